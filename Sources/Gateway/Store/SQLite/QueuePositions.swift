import Synchronization

/// The queued jobs' places, kept in memory beside the ledger so that a waiting client's position is a
/// lookup, not a count over the table: with thousands waiting, every change in the queue would
/// otherwise cost one SQL count per waiting client.
///
/// Changed only inside the ledger's write transactions (which SQLite runs one at a time), so it moves
/// in the same order as the rows it mirrors.
final class QueuePositions: Sendable {
    private struct State {
        /// Queue orders of the queued jobs, ascending.
        var orders: [Int64] = []
        var orderByJob: [String: Int64] = [:]
    }

    private let state = Mutex(State())

    /// Replaces everything with the ledger's queued jobs.
    func load(_ jobs: [(id: String, order: Int64)]) {
        state.withLock { state in
            state.orderByJob = Dictionary(jobs.map { ($0.id, $0.order) }, uniquingKeysWith: { first, _ in first })
            state.orders = state.orderByJob.values.sorted()
        }
    }

    /// A job joined the queue.
    func insert(_ id: String, order: Int64) {
        state.withLock { state in
            guard state.orderByJob.updateValue(order, forKey: id) == nil else { return }
            state.orders.insert(order, at: Self.lowerBound(order, in: state.orders))
        }
    }

    /// A job left the queue (started, cancelled); nothing when it was not in it.
    func remove(_ id: String) {
        state.withLock { state in
            guard let order = state.orderByJob.removeValue(forKey: id) else { return }
            let index = Self.lowerBound(order, in: state.orders)
            if index < state.orders.count, state.orders[index] == order { state.orders.remove(at: index) }
        }
    }

    /// 1-based place of a queued job; nil when it is not queued.
    func position(of id: String) -> Int? {
        state.withLock { state in
            state.orderByJob[id].map { Self.lowerBound($0, in: state.orders) + 1 }
        }
    }

    /// Jobs waiting.
    var count: Int { state.withLock { $0.orders.count } }

    private static func lowerBound(_ order: Int64, in orders: [Int64]) -> Int {
        var (low, high) = (0, orders.count)
        while low < high {
            let middle = (low + high) / 2
            if orders[middle] < order { low = middle + 1 } else { high = middle }
        }
        return low
    }
}
