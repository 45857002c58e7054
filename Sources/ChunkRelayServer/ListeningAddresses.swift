import Synchronization

/// Where the two servers listen, known only once they have bound (port 0 picks a free one).
public final class ListeningAddresses: Sendable {
    private struct State {
        var gateway: String?
        var runtime: String?
        var waiters: [CheckedContinuation<(gateway: String, runtime: String), Never>] = []
    }

    private let state = Mutex(State())

    /// Makes an empty set of addresses.
    public init() {}

    /// Records where a server listens; waiters resume once both are known.
    public func set(gateway: String? = nil, runtime: String? = nil) {
        let (ready, waiters) = state.withLock { state -> ((gateway: String, runtime: String)?, [CheckedContinuation<(gateway: String, runtime: String), Never>]) in
            if let gateway { state.gateway = gateway }
            if let runtime { state.runtime = runtime }
            guard let g = state.gateway, let r = state.runtime else { return (nil, []) }
            defer { state.waiters = [] }
            return ((g, r), state.waiters)
        }
        if let ready { for waiter in waiters { waiter.resume(returning: ready) } }
    }

    /// Both URLs, once both servers listen.
    public func wait() async -> (gateway: String, runtime: String) {
        await withCheckedContinuation { continuation in
            let ready: (gateway: String, runtime: String)? = state.withLock { state in
                if let gateway = state.gateway, let runtime = state.runtime { return (gateway, runtime) }
                state.waiters.append(continuation)
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}
