import RelayProtocol
import ServiceLifecycle

/// Where the gateway keeps jobs, the FIFO queue and the chunk ledger: `SQLiteJobStore` (the default,
/// embedded, one instance) or `PostgresJobStore` (`serve --store postgres://…`).
///
/// A ledger persists; it does not decide. A transition runs `decide` on the job's row under the row's
/// lock and writes back what `decide` returns, in one transaction; `decide` is `JobLifecycle` asking
/// `JobStateMachine`. What instances sharing a store coordinate is `ClusterCoordination`'s.
protocol JobLedger: Sendable {
    /// What the store needs running beside the gateway (PostgreSQL's connection pool; none for SQLite).
    var services: [any Service] { get }
    /// Adds a job at the back of the queue; returns it with its place.
    func insert(_ job: JobRecord) async throws -> JobRecord
    /// The job with this id.
    func job(id: String) async throws -> JobRecord?
    /// The job whose one-shot image has this key.
    func job(imageKey: String) async throws -> JobRecord?
    /// 1-based place of a job still queued; nil when it is not.
    func queuedPosition(of jobId: String) async throws -> Int?
    /// 1-based place in the queue of a job read as queued (counted anew if it has left since).
    func position(of job: JobRecord) async throws -> Int
    /// The lowest queue order of any job (a job put back goes before it).
    func frontOfQueue() async throws -> Int64
    /// The chunk at an index of an attempt, written or only reserved.
    func chunk(jobId: String, attempt: Int, index: Int) async throws -> ChunkRecord?
    /// The written chunks of an attempt after index `after`, in index order.
    func writtenChunks(jobId: String, attempt: Int, after: Int) async throws -> [ChunkRecord]
    /// Count, size, highest index and short chunks of an attempt's written chunks, and its reserved ones.
    func chunkSummary(jobId: String, attempt: Int, chunkSize: Int) async throws -> ChunkSummary
    /// Runs `decide` on the job's row (and, with `probe`, what the attempt's chunks say about an index)
    /// under the row's lock, and persists the write it returns in the same transaction. Nil when there
    /// is no such job.
    func update<T: Sendable>(
        jobId: String, probe: ChunkProbe?, _ decide: @Sendable (JobRecord, ChunkFacts?) throws -> (LedgerWrite?, T)
    ) async throws -> T?
    /// As `update`, on the first queued job not of `busyFunctions`, with the number of jobs running
    /// (among every instance sharing the store, counted in the same transaction). Nil when none waits.
    func updateNextQueued<T: Sendable>(
        excluding busyFunctions: Set<String>, _ decide: @Sendable (JobRecord, _ running: Int) throws -> (LedgerWrite?, T)
    ) async throws -> T?
    /// The jobs that match any of `filters`.
    func jobs(_ filters: [JobFilter]) async throws -> [JobRecord]
    /// Deletes these jobs' rows (their chunks go with them).
    func delete(ids: [String]) async throws
    /// Rows in the ledger, for `/metrics`.
    func rowCounts() async throws -> (jobs: Int, chunks: Int)
    /// Jobs by state, for `/metrics`.
    func countsByState() async throws -> [JobState: Int]
}

/// What a transition writes: the job's row as it is to be, and the chunk rows it touches.
struct LedgerWrite: Sendable {
    /// The row, written whole.
    var job: JobRecord
    /// A chunk index given to a digest (not yet written).
    var reserve: ChunkRecord? = nil
    /// A reserved chunk whose bytes are now written.
    var written: ChunkRecord? = nil
    /// A new attempt began: the chunk rows of earlier attempts go.
    var dropEarlierChunks = false
}

/// Which index of which attempt a transition asks the ledger about.
struct ChunkProbe: Sendable {
    var attempt: Int
    var index: Int
    var chunkSize: Int
    /// Whether to look at the attempt's other chunks too (an offer needs them; a written chunk only
    /// its own row).
    var neighbours = true
}

/// What the ledger holds about an index of an attempt, read in the transition's transaction.
struct ChunkFacts: Sendable {
    var existing: ChunkRecord?
    /// The attempt has a chunk at a higher index (false when the probe did not look).
    var laterChunk: Bool
    /// The attempt has a chunk shorter than the cap at a lower index (false when the probe did not look).
    var shortChunkBefore: Bool
}

/// A set of jobs by column values, as the janitor looks for them (the stores translate it; which
/// jobs are then acted on is `JobStateMachine`'s to say).
struct JobFilter: Sendable {
    var states: Set<JobState>
    var delivery: DeliveryMode? = nil
    /// `expiresAt` at or before this time.
    var expiresBy: Double? = nil
    /// `expiresAt` is null (a finished stream whose chunks went).
    var noExpiry = false
    /// `finishedAt` before this time.
    var finishedBefore: Double? = nil
    /// `readyAt` before this time.
    var readyBefore: Double? = nil
}

/// Count, total size, highest index and short-chunk count of an attempt's written chunks, and how
/// many indices are reserved but not written yet.
struct ChunkSummary: Sendable {
    var count: Int
    var bytes: Int64
    var maxIndex: Int
    var shortBeforeLast: Int
    var unwritten: Int
}
