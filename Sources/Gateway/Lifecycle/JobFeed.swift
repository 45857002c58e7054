import AsyncAlgorithms
import Foundation
import ServiceLifecycle
import Synchronization

/// Who is watching which job, and how they hear that something changed.
///
/// A subscriber gets a wake-up stream that holds at most one pending wake-up, and the reasons that
/// piled up since it last looked: a wake-up only means "look again", and the event stream then reads
/// what it has not sent yet. So a slow reader costs no memory here, a burst of changes costs one look,
/// and a change in the queue (which wakes every waiting client) costs a waiting client only a look at
/// its place in memory, not a read of the ledger.
final class JobFeed: Sendable {
    /// Why a subscriber was woken.
    struct Reasons: OptionSet, Sendable {
        let rawValue: Int
        /// Something about this job changed: read its row again.
        static let changed = Reasons(rawValue: 1)
        /// The queue moved: a queued job's place may have changed.
        static let queue = Reasons(rawValue: 2)
        /// Time for a heartbeat comment.
        static let heartbeat = Reasons(rawValue: 4)
    }

    /// One subscriber's end: its wake-ups, and the reasons behind them.
    struct Subscription: Sendable {
        let wakeups: AsyncStream<Void>
        fileprivate let feed: JobFeed
        fileprivate let jobId: String
        fileprivate let id: Int

        /// Takes the reasons pending since the last call.
        func reasons() -> Reasons { feed.take(jobId, id: id) }

        /// Ends the wake-ups (graceful shutdown, or the client's connection closed); the subscriber stays
        /// registered until it unsubscribes.
        func end() { feed.end(jobId, id: id) }
    }

    private struct Subscriber {
        var continuation: AsyncStream<Void>.Continuation
        var pending: Reasons = []
    }

    private struct State {
        var nextID = 0
        var subscribers: [String: [Int: Subscriber]] = [:]
        /// When the last subscriber of a job left.
        var lastSeen: [String: Double] = [:]
    }

    private let state = Mutex(State())
    /// When this gateway started: a job nobody has watched since counts as seen then.
    let startedAt = Date().timeIntervalSince1970
    /// Where this instance's notices go for the other instances to hear (PostgreSQL's NOTIFY); nil alone.
    private let outbox: AsyncStream<FeedNotice>.Continuation?

    /// A feed; with `outbox`, every notice is also handed on for other instances.
    init(outbox: AsyncStream<FeedNotice>.Continuation? = nil) {
        self.outbox = outbox
    }

    /// A notice from another instance: woken here only, never handed on again.
    func deliver(_ notice: FeedNotice) {
        switch notice {
        case .changed(let jobId): wake(jobId)
        case .queue: broadcast(.queue)
        case .dispatch: break  // for the dispatcher (the bridge wakes it on every notice), not for streams
        }
    }

    /// After the link to the other instances was down: every subscriber looks again at everything.
    func wakeEveryone() {
        broadcast([.changed, .queue])
    }

    /// Registers a subscriber of `jobId`.
    func subscribe(_ jobId: String) -> Subscription {
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let id = state.withLock { state in
            state.nextID += 1
            state.subscribers[jobId, default: [:]][state.nextID] = Subscriber(continuation: continuation)
            return state.nextID
        }
        return Subscription(wakeups: stream, feed: self, jobId: jobId, id: id)
    }

    /// Removes a subscriber (its connection ended).
    func unsubscribe(_ subscription: Subscription) {
        let continuation = state.withLock { state -> AsyncStream<Void>.Continuation? in
            let removed = state.subscribers[subscription.jobId]?.removeValue(forKey: subscription.id)
            if state.subscribers[subscription.jobId]?.isEmpty == true {
                state.subscribers[subscription.jobId] = nil
                state.lastSeen[subscription.jobId] = Date().timeIntervalSince1970
            }
            return removed?.continuation
        }
        continuation?.finish()
    }

    fileprivate func end(_ jobId: String, id: Int) {
        state.withLock { $0.subscribers[jobId]?[id]?.continuation }?.finish()
    }

    fileprivate func take(_ jobId: String, id: Int) -> Reasons {
        state.withLock { state in
            guard let pending = state.subscribers[jobId]?[id]?.pending else { return [] }
            state.subscribers[jobId]?[id]?.pending = []
            return pending
        }
    }

    /// Something about `jobId` changed.
    func notify(_ jobId: String) {
        wake(jobId)
        outbox?.yield(.changed(jobId))
    }

    private func wake(_ jobId: String) {
        let continuations = state.withLock { state in
            state.subscribers[jobId] == nil ? [] : Self.mark(&state.subscribers[jobId]!, with: .changed)
        }
        for continuation in continuations { continuation.yield() }
    }

    /// The queue changed (a job was queued, started, finished or cancelled): every queued job's position may have moved.
    func notifyQueue() {
        broadcast(.queue)
        outbox?.yield(.queue)
    }

    /// A job may be started somewhere: the other instances' dispatchers hear it, no waiting stream does.
    func notifyDispatchers() {
        outbox?.yield(.dispatch)
    }

    /// Tells every stream to write a heartbeat comment.
    func heartbeat() {
        broadcast(.heartbeat)
    }

    private func broadcast(_ reason: Reasons) {
        // In place, through `values`: looking each job up again by its id hashed every id of the queue.
        let continuations = state.withLock { state in
            var woken: [AsyncStream<Void>.Continuation] = []
            for index in state.subscribers.values.indices {
                woken += Self.mark(&state.subscribers.values[index], with: reason)
            }
            return woken
        }
        for continuation in continuations { continuation.yield() }
    }

    /// Adds `reason` to what each of one job's subscribers has pending; returns who to wake (after the lock).
    private static func mark(_ subscribers: inout [Int: Subscriber], with reason: Reasons) -> [AsyncStream<Void>.Continuation] {
        for index in subscribers.values.indices { subscribers.values[index].pending.insert(reason) }
        return subscribers.values.map(\.continuation)
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
            for await _ in AsyncTimerSequence(interval: interval, clock: .continuous).cancelOnGracefulShutdown() {
                feed.heartbeat()
            }
        }
    }
}
