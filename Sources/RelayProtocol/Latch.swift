import Synchronization

/// A value set once, for any number of tasks to wait for: the one place the project keeps the
/// "mutex + list of continuations" pattern (a base URL that becomes known, a cancellation, an exit).
///
/// Waiters that arrive after the value was set get it at once, so nothing set before a waiter
/// registered is lost. A waiting task that is cancelled gets `onCancel`'s value instead.
public final class Latch<Value: Sendable>: Sendable {
    private struct State {
        var value: Value?
        var nextID = 0
        var waiters: [Int: CheckedContinuation<Value?, Never>] = [:]
    }

    private let state = Mutex(State())

    /// An unset latch.
    public init() {}

    /// Sets the value (the first one wins) and wakes every waiter; returns whether this call set it.
    @discardableResult
    public func set(_ value: Value) -> Bool {
        let waiters: [CheckedContinuation<Value?, Never>]? = state.withLock { state in
            guard state.value == nil else { return nil }
            state.value = value
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        guard let waiters else { return false }
        for waiter in waiters { waiter.resume(returning: value) }
        return true
    }

    /// The value, if set.
    public var value: Value? { state.withLock { $0.value } }

    /// Waits for the value; nil when the waiting task is cancelled first.
    public func wait() async -> Value? {
        let id = state.withLock { state -> Int in
            state.nextID += 1
            return state.nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let immediate: Value?? = state.withLock { state in
                    if let value = state.value { return .some(value) }
                    // Checked under the lock: a cancellation handler that ran before this found nothing to resume.
                    if Task.isCancelled { return .some(nil) }
                    state.waiters[id] = continuation
                    return .none
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(returning: nil)
        }
    }

    /// Waiters now waiting (for `/metrics` and tests).
    public var waiterCount: Int { state.withLock { $0.waiters.count } }
}
