import RelayProtocol
import Synchronization

/// Cancellation of running attempts: the dispatcher runs each attempt inside `withScope`, and
/// `cancel` resolves that scope's latch, so a cancel that comes before anyone waits is kept, not lost.
final class JobCancellation: Sendable {
    private let scopes = Mutex<[String: Latch<Void>]>([:])

    /// Runs `body` while `jobId`'s attempt can be cancelled; the latch is set by `cancel(jobId)`.
    func withScope<T: Sendable>(_ jobId: String, _ body: (Latch<Void>) async -> T) async -> T {
        let latch = Latch<Void>()
        scopes.withLock { $0[jobId] = latch }
        defer { scopes.withLock { if $0[jobId] === latch { $0[jobId] = nil } } }
        return await body(latch)
    }

    /// Cancels the attempt of `jobId` running under a scope; a job with none is not running here.
    func cancel(_ jobId: String) {
        scopes.withLock { $0[jobId] }?.set(())
    }

    /// Whether an attempt of `jobId` runs here.
    func isRunning(_ jobId: String) -> Bool {
        scopes.withLock { $0[jobId] != nil }
    }

    /// Attempts that can be cancelled now.
    var count: Int { scopes.withLock { $0.count } }
}
