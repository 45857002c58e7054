import Crypto
import Foundation
import Hummingbird
import Logging
import NIOCore
import PostgresNIO
import RelayProtocol

/// Chunk bytes as rows of `chunkrelay_chunk_data` (one per chunk of an attempt), beside the
/// PostgreSQL store: any instance reads what any other stored. A retrieve-mode image is its sealed
/// attempt's rows; they go when the job no longer needs them (`removeImage`, or `sweep`).
struct PostgresChunkStorage: ChunkStorage {
    let client: PostgresClient
    let logger: Logger

    func prepare() async throws {}

    /// Only the digest the ledger gave the index to writes here, so a second write of an index brings the
    /// same bytes (a retry racing its first try): the first stays.
    func write(_ chunk: ByteBuffer, jobId: String, attempt: Int, index: Int, chunkSize: Int) async throws {
        try await client.query(
            """
            INSERT INTO chunkrelay_chunk_data (job_id, attempt, idx, bytes) VALUES (\(jobId), \(attempt), \(index), \(chunk))
            ON CONFLICT (job_id, attempt, idx) DO NOTHING
            """, logger: logger)
    }

    func seal(jobId: String, attempt: Int, length: Int64, chunkSize: Int, progress: AttemptDigest.Progress?) async throws -> (digest: ContentDigest, readBack: Int64) {
        let cap = Int64(chunkSize)
        let chunkCount = Int((length + cap - 1) / cap)
        var hasher = progress?.hasher ?? SHA256()
        let held = progress?.held ?? [:]
        let first = progress?.hashedChunks ?? 0
        var readBack: Int64 = 0
        // The chunks not in memory, in order, streamed from the table.
        let missing = (first..<chunkCount).filter { held[$0] == nil }
        var rows = try await client.query(
            """
            SELECT idx, bytes FROM chunkrelay_chunk_data WHERE job_id = \(jobId) AND attempt = \(attempt) AND idx = ANY(\(missing))
            ORDER BY idx
            """, logger: logger
        ).decode((Int, ByteBuffer).self).makeAsyncIterator()
        for index in first..<chunkCount {
            if let chunk = held[index] {
                chunk.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
                continue
            }
            guard let (stored, bytes) = try await rows.next(), stored == index else {
                throw GatewayError(.unprocessableContent, .incomplete, "chunk \(index) of attempt \(attempt) is not stored")
            }
            bytes.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
            readBack += Int64(bytes.readableBytes)
        }
        return (ContentDigest(hasher.finalize()), readBack)
    }

    /// The image is the sealed attempt's rows: nothing moves.
    func promote(jobId: String, attempt: Int) async throws {}

    func demote(jobId: String, attempt: Int) async {}

    /// Rows, not a file: deleting them frees no disk at once, so they go after the write as before.
    func removeSpoolNow(jobId: String, attempt: Int) {}

    func readChunk(jobId: String, attempt: Int, index: Int, chunkSize: Int, length: Int) async throws -> ByteBuffer {
        let rows = try await client.query(
            "SELECT bytes FROM chunkrelay_chunk_data WHERE job_id = \(jobId) AND attempt = \(attempt) AND idx = \(index)", logger: logger)
        for try await (bytes) in rows.decode(ByteBuffer.self) { return bytes }
        throw GatewayError(.gone, .streamExpired, "chunk \(index) of this stream is no longer kept")
    }

    func exists(jobId: String, attempt: Int) async -> Bool {
        // An empty image has no rows: it is kept as long as its job says it is.
        let rows = try? await client.query(
            """
            SELECT EXISTS (SELECT 1 FROM chunkrelay_chunk_data WHERE job_id = \(jobId) AND attempt = \(attempt))
                OR EXISTS (SELECT 1 FROM chunkrelay_job WHERE id = \(jobId) AND total_bytes = 0 AND expires_at IS NOT NULL)
            """, logger: logger)
        guard let rows else { return false }
        do {
            for try await (kept) in rows.decode(Bool.self) { return kept }
        } catch {
            return false
        }
        return false
    }

    func removeSpool(jobId: String, attempt: Int) async {
        _ = try? await client.query("DELETE FROM chunkrelay_chunk_data WHERE job_id = \(jobId) AND attempt = \(attempt)", logger: logger)
    }

    func removeSpool(jobId: String) async {
        _ = try? await client.query("DELETE FROM chunkrelay_chunk_data WHERE job_id = \(jobId)", logger: logger)
    }

    func removeImage(jobId: String) async {
        await removeSpool(jobId: jobId)
    }

    /// Left to `sweep`: a query cannot run without suspending.
    func removeImageNow(jobId: String) {}

    /// The rows that overlap `range`, in order, each cut to it.
    func sendImage(of job: JobRecord, range: Range<Int64>, on channel: any Channel, to writer: inout any ResponseBodyWriter) async throws {
        guard !range.isEmpty else { return }
        let cap = Int64(job.chunkSize)
        let firstIndex = Int(range.lowerBound / cap)
        let lastIndex = Int((range.upperBound - 1) / cap)
        let rows = try await client.query(
            """
            SELECT idx, bytes FROM chunkrelay_chunk_data
            WHERE job_id = \(job.id) AND attempt = \(job.attempt) AND idx BETWEEN \(firstIndex) AND \(lastIndex) ORDER BY idx
            """, logger: logger)
        var expected = firstIndex
        for try await (index, bytes) in rows.decode((Int, ByteBuffer).self) {
            guard index == expected else { break }
            let start = Int64(index) * cap
            let from = Int(max(range.lowerBound, start) - start)
            let to = Int(min(range.upperBound, start + Int64(bytes.readableBytes)) - start)
            guard from < to, let slice = bytes.getSlice(at: bytes.readerIndex + from, length: to - from) else { break }
            try await writer.write(slice)
            expected += 1
        }
        guard expected == lastIndex + 1 else {
            throw GatewayError(.internalServerError, .internalError, "chunk \(expected) of job \(job.id)'s image is missing")
        }
    }

    /// Deletes the bytes of attempts that will not go on and of jobs that no longer need theirs: retrieved,
    /// expired, failed or cancelled jobs, and finished streams past their resume grace. An image that
    /// some instance is still sending stays until its claim ends or runs out.
    func sweep() async {
        _ = try? await client.query(
            """
            DELETE FROM chunkrelay_chunk_data d USING chunkrelay_job j WHERE d.job_id = j.id AND (
                d.attempt < j.attempt
                OR ((j.state IN ('failed', 'cancelled', 'expired') OR (j.state = 'done' AND (j.delivery = 'retrieve' OR j.expires_at IS NULL)))
                    AND (j.claim_owner IS NULL OR j.claim_until < \(Date().timeIntervalSince1970))))
            """, logger: logger)
    }
}
