import Foundation
import Synchronization

/// What this instance saw happen to each recent job, in order — every move the state machine made
/// (attempts, chunks stored, completion, failures, transfers and what they delivered) — for the
/// inspector's timelines. In memory and bounded: the ledger keeps the state, this keeps the story.
/// With several instances each tells what it saw; the ledger's row is the same for all.
public final class JobActivity: Sendable {
    /// One move.
    public struct Entry: Sendable, Codable, Hashable {
        /// When (seconds since 1970).
        public var time: Double
        /// What happened (`attempt 1 started`, `chunk 3 stored`, …).
        public var event: String
        /// The job's state after it.
        public var state: String
        /// Chunk index, for a chunk stored.
        public var chunk: Int?
        /// Bytes: a chunk's, or those a transfer delivered.
        public var bytes: Int64?
    }

    private struct State {
        var entries: [String: [Entry]] = [:]
        var order: [String] = []
    }

    private let state = Mutex(State())
    private let changes = Atomic<Int>(0)
    /// Jobs remembered at most (the oldest are forgotten first), and moves per job.
    static let jobs = 500, movesPerJob = 2000

    init() {}

    /// A count that grows with every move recorded: a watcher compares it to see that something happened.
    public var version: Int { changes.load(ordering: .relaxed) }

    /// The moves recorded for `jobId`, oldest first.
    public func entries(of jobId: String) -> [Entry] {
        state.withLock { $0.entries[jobId] ?? [] }
    }

    func record(_ jobId: String, _ entry: Entry) {
        state.withLock { state in
            if state.entries[jobId] == nil {
                state.order.append(jobId)
                if state.order.count > Self.jobs { state.entries[state.order.removeFirst()] = nil }
            }
            if state.entries[jobId, default: []].count < Self.movesPerJob { state.entries[jobId, default: []].append(entry) }
        }
        changes.add(1, ordering: .relaxed)
    }

    /// Records a transition the machine made (a refusal is not a move, and is not recorded).
    func record(_ transition: JobLifecycle.Transition, at time: Double) {
        guard case .moved = transition.decision else { return }
        let job = transition.after
        var entry = Entry(time: time, event: "", state: job.state.rawValue)
        switch transition.event {
        case nil: entry.event = "created (\(job.delivery.rawValue))"
        case .attemptStarted: entry.event = "attempt \(job.attempt) started"
        case .chunkOffered: return  // its bytes are not stored yet: `chunkWritten` tells
        case .chunkWritten(let offer):
            entry.event = "chunk \(offer.index) stored"
            entry.chunk = offer.index
            entry.bytes = Int64(offer.size)
        case .completed(let attempt): entry.event = "attempt \(attempt) completed: \(job.totalChunks ?? 0) chunks, \(job.totalBytes ?? 0) bytes verified"
        case .attemptFailed(let attempt, let retry):
            entry.event = "attempt \(attempt) failed\(job.errorCode.map { " (\($0))" } ?? "")\(retry && job.state == .queued ? "; queued again" : "")"
        case .cancelled: entry.event = "cancelled"
        case .abandoned: entry.event = "abandoned: no client watched the stream"
        case .expired: entry.event = "expired"
        case .transferClaimed: entry.event = "image transfer started"
        case .transferReleased(let acknowledged):
            let delivered = acknowledged.map { Int64($0.count) } ?? 0
            entry.event = job.state == .done && transition.before.state == .ready
                ? "image transfer ended: \(delivered) bytes delivered; image whole, key consumed"
                : "image transfer ended: \(delivered) bytes delivered"
            entry.bytes = delivered
        case .forgotten: entry.event = "forgotten (retention over)"
        case .leaseLost: entry.event = "lease lost: taken over or put back"
        }
        record(job.id, entry)
    }
}
