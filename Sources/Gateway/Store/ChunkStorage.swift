import Hummingbird
import NIOCore
import RelayProtocol

/// Where chunk bytes live while an attempt uploads, and the image's bytes once it is verified:
/// `Spool` (files in the state directory, served with `sendfile`) beside the SQLite store, or
/// `PostgresChunkStorage` (rows in PostgreSQL, readable by every instance) beside the PostgreSQL store.
protocol ChunkStorage: Sendable {
    /// Creates what it needs (folders).
    func prepare() async throws
    /// Stores a verified chunk of an attempt.
    func write(_ chunk: ByteBuffer, jobId: String, attempt: Int, index: Int, chunkSize: Int) async throws
    /// Finishes the image's SHA-256 from what was hashed as chunks arrived (`progress`; nil after a
    /// restart), reading back only the chunks that were not, and makes the attempt's bytes durable.
    /// Returns the digest and how many bytes were read back.
    func seal(jobId: String, attempt: Int, length: Int64, chunkSize: Int, progress: AttemptDigest.Progress?) async throws -> (digest: ContentDigest, readBack: Int64)
    /// Makes a sealed retrieve-mode attempt the job's image.
    func promote(jobId: String, attempt: Int) async throws
    /// Undoes `promote` when the ledger could not record the image, so a retried `complete` finds the
    /// attempt's bytes where it left them.
    func demote(jobId: String, attempt: Int) async
    /// One chunk of an attempt.
    func readChunk(jobId: String, attempt: Int, index: Int, chunkSize: Int, length: Int) async throws -> ByteBuffer
    /// Whether an attempt's chunks are still kept (a finished stream's, for resumes).
    func exists(jobId: String, attempt: Int) async -> Bool
    /// Drops one attempt's chunks.
    func removeSpool(jobId: String, attempt: Int) async
    /// Drops one attempt's chunks without suspending, from inside the ledger's transaction (the
    /// machine's `removeBytesFirst`); storage that cannot do that drops them after the write instead.
    func removeSpoolNow(jobId: String, attempt: Int)
    /// Drops every attempt's chunks of a job.
    func removeSpool(jobId: String) async
    /// Drops a job's image.
    func removeImage(jobId: String) async
    /// Drops a job's image without suspending (from a claim's release, which may run in a `deinit`);
    /// storage that cannot do that leaves it to `sweep`.
    func removeImageNow(jobId: String)
    /// Writes `range` of a ready job's image as the response body.
    func sendImage(of job: JobRecord, range: Range<Int64>, on channel: any Channel, to writer: inout any ResponseBodyWriter) async throws
    /// Drops bytes no job stands behind any more (the janitor calls it every pass).
    func sweep() async
}
