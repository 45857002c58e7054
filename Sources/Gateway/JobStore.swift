import Foundation
import RelayProtocol
import ServiceLifecycle

/// Where the gateway keeps jobs, the FIFO queue and the chunk ledger: `SQLiteJobStore` (the default,
/// embedded, one instance) or `PostgresJobStore` (`serve --store postgres://…`). `JobLifecycle` is the
/// only writer; every write a client or function is told about is committed before the answer goes out.
protocol JobStore: Sendable {
    /// What the store needs running beside the gateway (PostgreSQL's connection pool).
    var services: [any Service] { get }
    /// Adds a queued job at the back of the queue.
    func insert(id: String, request: CreateJobRequest, chunkSize: Int, imageKey: String?) async throws -> JobRecord
    /// The job with this id.
    func job(id: String) async throws -> JobRecord?
    /// The job whose one-shot image has this key.
    func job(imageKey: String) async throws -> JobRecord?
    /// 1-based place of a job still queued; nil when it is not.
    func queuedPosition(of jobId: String) async throws -> Int?
    /// 1-based place in the queue of a job read as queued (counted anew if it has left since).
    func position(of job: JobRecord) async throws -> Int
    /// Takes the first queued job, passing over those of `busyFunctions`, and starts its next attempt;
    /// nil when none waits, or when `limit` jobs already run (among every instance sharing the store).
    func startNextAttempt(excluding busyFunctions: Set<String>, limit: Int) async throws -> JobRecord?
    /// Starts the next attempt of a running job whose attempt `attempt` failed; nil if it moved on.
    func startRetry(jobId: String, after attempt: Int, failure: JobError) async throws -> JobRecord?
    /// The stored chunk at an index of an attempt.
    func chunk(jobId: String, attempt: Int, index: Int) async throws -> ChunkRecord?
    /// The stored chunks of an attempt after index `after`, in index order.
    func chunks(jobId: String, attempt: Int, after: Int) async throws -> [ChunkRecord]
    /// Records a chunk whose bytes are stored, if its attempt is still the current one.
    func insertChunk(_ chunk: ChunkRecord, chunkSize: Int) async throws -> ChunkInsert
    /// Count, size, highest index and short chunks of an attempt.
    func chunkSummary(jobId: String, attempt: Int, chunkSize: Int) async throws -> ChunkSummary
    /// Marks a running attempt's image verified (`ready`, or `done` for a stream) until `expiresAt`.
    func markComplete(jobId: String, attempt: Int, manifest: CompleteRequest, expiresAt: Double) async throws -> Bool
    /// Ends a job in one of `allowed` states; returns whether it changed.
    @discardableResult
    func finish(jobId: String, from allowed: Set<JobState>, to state: JobState, error: JobError?) async throws -> Bool
    /// Ready images whose time ran out.
    func expiredReadyJobs(now: Double) async throws -> [JobRecord]
    /// Finished streams whose resume grace ran out.
    func expiredStreams(now: Double) async throws -> [JobRecord]
    /// Records that a finished stream's chunks were deleted.
    func clearExpiry(jobId: String) async throws
    /// Stream-mode jobs still waiting or running.
    func unfinishedStreamJobs() async throws -> [JobRecord]
    /// After a crash: running jobs back to the front of the queue, in their order; returns their ids.
    func requeueRunningJobs() async throws -> [String]
    /// Deletes jobs that ended before `cutoff`; returns their ids.
    func deleteFinished(before cutoff: Double) async throws -> [String]
    /// Rows in the ledger, for `/metrics`.
    func rowCounts() async throws -> (jobs: Int, chunks: Int)
    /// Jobs by state, for `/metrics`.
    func countsByState() async throws -> [String: Int]
    /// Takes the one transfer of a ready image among instances sharing the store, until `until` at the
    /// latest; false when another instance holds it.
    func claimTransfer(jobId: String, until: Double) async throws -> Bool
    /// Ends this instance's transfer claim.
    func releaseTransfer(jobId: String) async throws
    /// Records that this instance has clients watching these stream jobs now.
    func markWatched(_ jobIds: [String], at time: Double) async throws
    /// When any instance last recorded a client watching each of these jobs.
    func lastWatched(_ jobIds: [String]) async throws -> [String: Double]
    /// Extends the leases of the jobs this instance runs.
    func renewLeases() async throws
    /// Running jobs whose instance stopped renewing their lease (it was killed) go back to the front
    /// of the queue; returns their ids.
    func requeueExpiredLeases() async throws -> [String]
}

extension JobStore {
    var services: [any Service] { [] }

    /// One instance: the gateway's own claim in memory is the whole story.
    func claimTransfer(jobId: String, until: Double) async throws -> Bool { true }

    func releaseTransfer(jobId: String) async throws {}

    /// One instance: the feed's own presence is the whole story.
    func markWatched(_ jobIds: [String], at time: Double) async throws {}

    func lastWatched(_ jobIds: [String]) async throws -> [String: Double] { [:] }

    /// One instance: what runs is this process's, and a crash is recovered at the next start.
    func renewLeases() async throws {}

    func requeueExpiredLeases() async throws -> [String] { [] }

    /// Ends a job without an error.
    @discardableResult
    func finish(jobId: String, from allowed: Set<JobState>, to state: JobState) async throws -> Bool {
        try await finish(jobId: jobId, from: allowed, to: state, error: nil)
    }

}

/// Outcome of recording a chunk.
enum ChunkInsert: Sendable {
    case stored
    case duplicate
    case conflict(existing: String)
    case attemptOver
    case shortChunkNotLast
}

/// Count, total size, highest index and short-chunk count of an attempt's chunks.
struct ChunkSummary: Sendable {
    var count: Int
    var bytes: Int64
    var maxIndex: Int
    var shortBeforeLast: Int
}
