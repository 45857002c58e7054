import Synchronization

/// A claim on one environment of a function, from `LocalRuntime.reserve`; given back if never used.
public final class Reservation: Sendable {
    let function: FunctionConfiguration
    let pool: EnvironmentPool
    private let lease: Mutex<EnvironmentPool.Lease?>

    init(function: FunctionConfiguration, pool: EnvironmentPool, lease: EnvironmentPool.Lease) {
        self.function = function
        self.pool = pool
        self.lease = Mutex(lease)
    }

    func take() -> EnvironmentPool.Lease? {
        lease.withLock { lease in
            defer { lease = nil }
            return lease
        }
    }

    deinit {
        // The invoker left before the invocation began (its connection closed before the answer's head
        // went out): the claim must not hold a concurrency slot forever.
        guard let unused = take() else { return }
        let pool = pool
        Task { await pool.release(unused) }
    }
}
