import Foundation
import ServiceLifecycle
import Synchronization

/// Who is watching which job, and how they hear that something changed.
///
/// A subscriber gets a signal stream that holds at most one pending signal: a signal only means
/// "look again", and the event stream then reads what it has not sent yet from the ledger and the
/// spool. So a slow reader costs no memory here, and a burst of changes costs one look.
final class JobFeed: Sendable {
    enum Signal: Sendable { case changed, heartbeat }

    private struct State {
        var nextID = 0
        var subscribers: [String: [Int: AsyncStream<Signal>.Continuation]] = [:]
        /// When the last subscriber of a job left.
        var lastSeen: [String: Double] = [:]
    }

    private let state = Mutex(State())
    /// When this gateway started: a job nobody has watched since counts as seen then.
    let startedAt = Date().timeIntervalSince1970

    /// Registers a subscriber of `jobId`.
    func subscribe(_ jobId: String) -> (id: Int, signals: AsyncStream<Signal>) {
        let (stream, continuation) = AsyncStream.makeStream(of: Signal.self, bufferingPolicy: .bufferingNewest(1))
        let id = state.withLock { state in
            state.nextID += 1
            state.subscribers[jobId, default: [:]][state.nextID] = continuation
            return state.nextID
        }
        return (id, stream)
    }

    /// Removes a subscriber (its connection ended).
    func unsubscribe(_ jobId: String, id: Int) {
        let continuation = state.withLock { state -> AsyncStream<Signal>.Continuation? in
            let removed = state.subscribers[jobId]?.removeValue(forKey: id)
            if state.subscribers[jobId]?.isEmpty == true {
                state.subscribers[jobId] = nil
                state.lastSeen[jobId] = Date().timeIntervalSince1970
            }
            return removed
        }
        continuation?.finish()
    }

    /// Something about `jobId` changed.
    func notify(_ jobId: String) {
        let continuations = state.withLock { Array(($0.subscribers[jobId] ?? [:]).values) }
        for continuation in continuations { continuation.yield(.changed) }
    }

    /// The queue changed (a job was queued, started, finished or cancelled): every queued job's position may have moved.
    func notifyQueue() {
        broadcast(.changed)
    }

    /// Tells every stream to write a heartbeat comment.
    func heartbeat() {
        broadcast(.heartbeat)
    }

    private func broadcast(_ signal: Signal) {
        let continuations = state.withLock { $0.subscribers.values.flatMap(\.values) }
        for continuation in continuations { continuation.yield(signal) }
    }

    /// Whether anyone watches `jobId` now, and if not, since when nobody has.
    func presence(_ jobId: String) -> (watching: Bool, lastSeen: Double?) {
        state.withLock { state in
            ((state.subscribers[jobId]?.isEmpty == false), state.lastSeen[jobId])
        }
    }

    /// Open event streams, for `/metrics`.
    var subscriberCount: Int { state.withLock { $0.subscribers.values.reduce(0) { $0 + $1.count } } }

    func forget(_ jobId: String) {
        _ = state.withLock { $0.lastSeen.removeValue(forKey: jobId) }
    }

    /// The `Service` that sends heartbeats so proxies keep idle event streams open.
    struct HeartbeatRunner: Service {
        let feed: JobFeed
        let interval: Duration

        func run() async throws {
            await cancelWhenGracefulShutdown {
                while !Task.isCancelled {
                    try? await Task.sleep(for: interval)
                    feed.heartbeat()
                }
            }
        }
    }
}
