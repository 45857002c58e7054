import Foundation

/// The environments of one function: warm ones are reused, new ones started up to the concurrency limit,
/// and callers beyond it wait in FIFO order (Lambda queues asynchronous invocations the same way).
actor EnvironmentPool {
    /// What a caller gets: a warm environment, or the right to start one.
    enum Lease: Sendable {
        case warm(ExecutionEnvironment)
        case slot
    }

    let limit: Int
    /// Bumped by `retire()`: an environment started before comes back to be stopped, not reused.
    private(set) var generation = 0
    private var idle: [ExecutionEnvironment] = []
    private var count = 0
    private var waiters: [(id: Int, continuation: CheckedContinuation<Lease?, Never>)] = []
    private var nextWaiterID = 0

    init(limit: Int) {
        self.limit = limit
    }

    /// A warm environment or a slot; waits while every allowed environment is busy, and returns nil if
    /// the caller is cancelled while waiting.
    func lease() async -> Lease? {
        if let available = leaseIfAvailable() { return available }
        nextWaiterID += 1
        let id = nextWaiterID
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                if Task.isCancelled {
                    continuation.resume(returning: nil)
                } else {
                    waiters.append((id, continuation))
                }
            }
        } onCancel: {
            Task { await self.cancelWaiter(id) }
        }
    }

    private func cancelWaiter(_ id: Int) {
        guard let index = waiters.firstIndex(where: { $0.id == id }) else { return }
        waiters.remove(at: index).continuation.resume(returning: nil)
    }

    /// Like `lease`, but `nil` instead of waiting (synchronous invokes are throttled, not queued).
    func leaseIfAvailable() -> Lease? {
        while let environment = idle.popLast() {
            if environment.isAlive { return .warm(environment) }
            count -= 1
        }
        guard count < limit else { return nil }
        count += 1
        return .slot
    }

    /// Returns an environment after an invocation.
    func giveBack(_ environment: ExecutionEnvironment) {
        guard environment.isAlive else { return discard() }
        guard environment.generation == generation else {
            // Its code was rebuilt while it ran: the next invocation must start the new code.
            environment.terminate(signal: SIGKILL)
            return discard()
        }
        if !waiters.isEmpty {
            waiters.removeFirst().continuation.resume(returning: .warm(environment))
        } else {
            idle.append(environment)
        }
    }

    /// Gives up a slot whose environment died or never started.
    func discard() {
        if !waiters.isEmpty {
            waiters.removeFirst().continuation.resume(returning: .slot)
        } else {
            count -= 1
        }
    }

    /// Gives back a lease that was never used.
    func release(_ lease: Lease) {
        switch lease {
        case .warm(let environment): giveBack(environment)
        case .slot: discard()
        }
    }

    /// Takes out the idle environments unused since `cutoff`, for the caller to stop.
    func reapIdle(unusedSince cutoff: ContinuousClock.Instant) -> [ExecutionEnvironment] {
        let (stale, fresh) = (idle.filter { $0.lastUsed < cutoff }, idle.filter { $0.lastUsed >= cutoff })
        idle = fresh
        count -= stale.count
        return stale
    }

    /// Starts a new generation after the function was rebuilt: takes out the idle environments for the
    /// caller to stop; busy ones are stopped when they come back.
    func retire() -> [ExecutionEnvironment] {
        generation += 1
        let retired = idle
        idle = []
        count -= retired.count
        return retired
    }

    /// Environments currently alive (idle or busy).
    var liveCount: Int { count }
    /// Environments waiting warm for an invocation.
    var idleCount: Int { idle.count }
}
