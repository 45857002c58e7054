/// The environments of one function: warm ones are reused, new ones started up to the concurrency limit,
/// and callers beyond it wait in FIFO order (Lambda queues asynchronous invocations the same way).
actor EnvironmentPool {
    /// What a caller gets: a warm environment, or the right to start one.
    enum Lease: Sendable {
        case warm(ExecutionEnvironment)
        case slot
    }

    let limit: Int
    private var idle: [ExecutionEnvironment] = []
    private var count = 0
    private var waiters: [CheckedContinuation<Lease, Never>] = []

    init(limit: Int) {
        self.limit = limit
    }

    /// A warm environment or a slot; waits while every allowed environment is busy.
    func lease() async -> Lease {
        while let environment = idle.popLast() {
            if environment.isAlive { return .warm(environment) }
            count -= 1
        }
        if count < limit {
            count += 1
            return .slot
        }
        return await withCheckedContinuation { waiters.append($0) }
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
        if !waiters.isEmpty {
            waiters.removeFirst().resume(returning: .warm(environment))
        } else {
            idle.append(environment)
        }
    }

    /// Gives up a slot whose environment died or never started.
    func discard() {
        if !waiters.isEmpty {
            waiters.removeFirst().resume(returning: .slot)
        } else {
            count -= 1
        }
    }

    /// Environments currently alive (idle or busy).
    var liveCount: Int { count }
}
