import Synchronization

/// A value that tests hand from one task to another.
public final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    /// Wraps `value`.
    public init(_ value: Value) { mutex = Mutex(value) }

    /// The current value.
    public var value: Value { mutex.withLock { $0 } }

    /// Changes the value atomically (a get-then-set from several tasks would lose updates).
    public func update<R>(_ body: (inout Value) -> R) -> R { mutex.withLock { body(&$0) } }
}
