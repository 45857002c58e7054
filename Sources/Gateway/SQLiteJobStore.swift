import Foundation
import GRDB
import RelayProtocol

/// The SQLite ledger (WAL): jobs, their chunks' digests and their image keys. The default store, for
/// one gateway instance.
///
/// Every write that a client or function is told about is committed before the answer goes out.
/// `synchronous=NORMAL` in WAL mode: a commit reaches the operating system before the answer, so a
/// crashed or killed gateway loses nothing; only a power loss or kernel crash can lose the last
/// commits (their fsync waits for the next checkpoint), which for an emulator whose jobs a client
/// can rerun is the right trade for not paying an fsync per chunk.
struct SQLiteJobStore: JobStore {
    let database: DatabasePool
    /// Places of the queued jobs, mirrored from the ledger inside its write transactions.
    let queue = QueuePositions()

    /// Opens (creating if needed) the ledger at `path` with owner-only permissions.
    init(path: String) throws {
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            // The ledger is small; SQLite's default 2 MB page cache per connection would be most of the
            // gateway's memory budget across the pool's connections.
            try db.execute(sql: "PRAGMA cache_size = -256")
        }
        configuration.busyMode = .timeout(10)
        if !FileManager.default.fileExists(atPath: path) {
            _ = FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
        }
        database = try DatabasePool(path: path, configuration: configuration)
        try Self.migrator.migrate(database)
        let queued = try database.read { db in
            try Row.fetchAll(db, sql: "SELECT id, queueOrder FROM job WHERE state = 'queued'").map { (id: $0[0] as String, order: $0[1] as Int64) }
        }
        queue.load(queued)
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.create(table: "job") { t in
                t.primaryKey("id", .text)
                t.column("function", .text).notNull()
                t.column("params", .text).notNull()
                t.column("delivery", .text).notNull()
                t.column("state", .text).notNull()
                t.column("queueOrder", .integer).notNull()
                t.column("attempt", .integer).notNull().defaults(to: 0)
                t.column("uploadToken", .text)
                t.column("chunkSize", .integer).notNull()
                t.column("imageKey", .text).unique()
                t.column("totalChunks", .integer)
                t.column("totalBytes", .integer)
                t.column("sha256", .text)
                t.column("contentType", .text)
                t.column("errorCode", .text)
                t.column("errorMessage", .text)
                t.column("createdAt", .double).notNull()
                t.column("readyAt", .double)
                t.column("expiresAt", .double)
                t.column("finishedAt", .double)
            }
            try db.create(index: "job_state_order", on: "job", columns: ["state", "queueOrder"])
            try db.create(table: "chunk") { t in
                t.column("jobId", .text).notNull().references("job", onDelete: .cascade)
                t.column("attempt", .integer).notNull()
                t.column("idx", .integer).notNull()
                t.column("size", .integer).notNull()
                t.column("sha256", .text).notNull()
                t.primaryKey(["jobId", "attempt", "idx"])
            }
        }
        migrator.registerMigration("v2") { db in
            // `MAX(queueOrder)` at every insert and the janitor's sweep of finished rows must not scan the table.
            try db.create(index: "job_queue_order", on: "job", columns: ["queueOrder"])
            try db.create(index: "job_finished_at", on: "job", columns: ["finishedAt"])
            try db.create(index: "job_ready_at", on: "job", columns: ["readyAt"])
        }
        migrator.registerMigration("v3") { db in
            // What the current attempt has stored so far, so progress is read from the job's row rather
            // than summed over its chunks at every chunk.
            try db.alter(table: "job") { t in
                t.add(column: "storedChunks", .integer).notNull().defaults(to: 0)
                t.add(column: "storedBytes", .integer).notNull().defaults(to: 0)
            }
        }
        return migrator
    }

    static var now: Double { Date().timeIntervalSince1970 }

    /// Adds a queued job at the back of the queue.
    func insert(id: String, request: CreateJobRequest, chunkSize: Int, imageKey: String?) async throws -> JobRecord {
        let params = String(decoding: try JSONEncoder().encode(request.params), as: UTF8.self)
        return try await database.write { db in
            let last = try Int64.fetchOne(db, sql: "SELECT MAX(queueOrder) FROM job") ?? 0
            let record = JobRecord(
                id: id, function: request.function, params: params, delivery: request.delivery.rawValue,
                state: JobState.queued.rawValue, queueOrder: last + 1, attempt: 0, uploadToken: nil, chunkSize: chunkSize,
                imageKey: imageKey, createdAt: Self.now
            )
            try record.insert(db)
            queue.insert(id, order: record.queueOrder)
            return record
        }
    }

    func job(id: String) async throws -> JobRecord? {
        try await database.read { db in try JobRecord.fetchOne(db, key: id) }
    }

    func job(imageKey: String) async throws -> JobRecord? {
        try await database.read { db in
            try JobRecord.fetchOne(db, sql: "SELECT * FROM job WHERE imageKey = ?", arguments: [imageKey])
        }
    }

    func queuedPosition(of jobId: String) async throws -> Int? {
        queue.position(of: jobId)
    }

    /// 1-based place in the queue of a queued job: from memory, or counted in the ledger when the job
    /// left the queue since it was read.
    func position(of job: JobRecord) async throws -> Int {
        if let position = queue.position(of: job.id) { return position }
        return try await database.read { db in
            1 + (try Int.fetchOne(
                db, sql: "SELECT COUNT(*) FROM job WHERE state = 'queued' AND queueOrder < ?", arguments: [job.queueOrder]
            ) ?? 0)
        }
    }

    /// Takes the first queued job and starts a new attempt: state `running`, a fresh token,
    /// and the previous attempts' chunks forgotten.
    /// Jobs of `busyFunctions` (at their own concurrency limit) are passed over, keeping their place.
    /// One instance: the dispatcher's own count is the limit, so `limit` is not counted again here.
    func startNextAttempt(excluding busyFunctions: Set<String>, limit: Int) async throws -> JobRecord? {
        try await database.write { db in
            let placeholders = busyFunctions.map { _ in "?" }.joined(separator: ",")
            let filter = busyFunctions.isEmpty ? "" : "AND function NOT IN (\(placeholders))"
            guard var job = try JobRecord.fetchOne(
                db, sql: "SELECT * FROM job WHERE state = 'queued' \(filter) ORDER BY queueOrder LIMIT 1",
                arguments: StatementArguments(Array(busyFunctions))
            ) else {
                return nil
            }
            job.state = JobState.running.rawValue
            try Self.beginAttempt(&job, in: db)
            queue.remove(job.id)
            return job
        }
    }

    /// Starts the next attempt of a running job whose attempt `attempt` failed: a new token, the failed
    /// attempt's chunks forgotten, the failure kept as the job's last error. Nil when the job is no longer
    /// running that attempt (cancelled meanwhile, say).
    func startRetry(jobId: String, after attempt: Int, failure: JobError) async throws -> JobRecord? {
        try await database.write { db in
            guard var job = try JobRecord.fetchOne(db, key: jobId), job.jobState == .running, job.attempt == attempt else { return nil }
            job.errorCode = failure.code
            job.errorMessage = failure.message
            try Self.beginAttempt(&job, in: db)
            return job
        }
    }

    /// A new attempt: the next number, a fresh token (the old one stops working), the earlier attempts' chunks forgotten.
    private static func beginAttempt(_ job: inout JobRecord, in db: Database) throws {
        job.attempt += 1
        job.uploadToken = RandomToken.make()
        job.storedChunks = 0
        job.storedBytes = 0
        try job.update(db)
        try db.execute(sql: "DELETE FROM chunk WHERE jobId = ? AND attempt < ?", arguments: [job.id, job.attempt])
    }

    /// The stored chunk at an index of an attempt.
    func chunk(jobId: String, attempt: Int, index: Int) async throws -> ChunkRecord? {
        try await database.read { db in
            try ChunkRecord.fetchOne(db, key: ["jobId": jobId, "attempt": attempt, "idx": index])
        }
    }

    /// The stored chunks of an attempt after index `after`, in index order (what a stream has not sent yet).
    func chunks(jobId: String, attempt: Int, after: Int) async throws -> [ChunkRecord] {
        try await database.read { db in
            try ChunkRecord.fetchAll(
                db, sql: "SELECT * FROM chunk WHERE jobId = ? AND attempt = ? AND idx > ? ORDER BY idx",
                arguments: [jobId, attempt, after])
        }
    }

    /// Records a chunk whose bytes are already in the spool, if its attempt is still the current one.
    func insertChunk(_ chunk: ChunkRecord, chunkSize: Int) async throws -> ChunkInsert {
        try await database.write { db in
            guard let job = try JobRecord.fetchOne(db, key: chunk.jobId), job.jobState == .running, job.attempt == chunk.attempt else {
                return .attemptOver
            }
            if let existing = try ChunkRecord.fetchOne(db, key: ["jobId": chunk.jobId, "attempt": chunk.attempt, "idx": chunk.idx]) {
                return existing.sha256 == chunk.sha256 ? .duplicate : .conflict(existing: existing.sha256)
            }
            // Offsets are index × cap, so only the last chunk may be short.
            if chunk.size < chunkSize {
                let later = try Int.fetchOne(
                    db, sql: "SELECT COUNT(*) FROM chunk WHERE jobId = ? AND attempt = ? AND idx > ?",
                    arguments: [chunk.jobId, chunk.attempt, chunk.idx]) ?? 0
                if later > 0 { return .shortChunkNotLast }
            }
            let shortEarlier = try Int.fetchOne(
                db, sql: "SELECT COUNT(*) FROM chunk WHERE jobId = ? AND attempt = ? AND idx < ? AND size < ?",
                arguments: [chunk.jobId, chunk.attempt, chunk.idx, chunkSize]) ?? 0
            if shortEarlier > 0 { return .shortChunkNotLast }
            try chunk.insert(db)
            try db.execute(
                sql: "UPDATE job SET storedChunks = storedChunks + 1, storedBytes = storedBytes + ? WHERE id = ?",
                arguments: [chunk.size, chunk.jobId])
            return .stored
        }
    }

    func chunkSummary(jobId: String, attempt: Int, chunkSize: Int) async throws -> ChunkSummary {
        try await database.read { db in
            let row = try Row.fetchOne(
                db, sql: "SELECT COUNT(*), COALESCE(SUM(size), 0), COALESCE(MAX(idx), -1) FROM chunk WHERE jobId = ? AND attempt = ?",
                arguments: [jobId, attempt])!
            let count: Int = row[0]
            let maxIndex: Int = row[2]
            let short = try Int.fetchOne(
                db, sql: "SELECT COUNT(*) FROM chunk WHERE jobId = ? AND attempt = ? AND idx < ? AND size <> ?",
                arguments: [jobId, attempt, maxIndex, chunkSize]) ?? 0
            return ChunkSummary(count: count, bytes: row[1], maxIndex: maxIndex, shortBeforeLast: short)
        }
    }

    /// Marks a running attempt's image verified: `ready` (retrieve mode) or `done` (stream mode: every chunk
    /// is spooled), until `expiresAt` (the image's TTL, or the stream's resume grace).
    func markComplete(jobId: String, attempt: Int, manifest: CompleteRequest, expiresAt: Double) async throws -> Bool {
        try await database.write { db in
            guard var job = try JobRecord.fetchOne(db, key: jobId), job.jobState == .running, job.attempt == attempt else { return false }
            job.state = (job.deliveryMode == .retrieve ? JobState.ready : JobState.done).rawValue
            job.totalChunks = manifest.chunks
            job.totalBytes = manifest.bytes
            job.sha256 = manifest.sha256
            job.contentType = manifest.contentType
            job.readyAt = Self.now
            job.expiresAt = expiresAt
            job.uploadToken = nil
            job.errorCode = nil
            job.errorMessage = nil
            try job.update(db)
            return true
        }
    }

    /// Ends a job that has not already ended (failure, cancel); returns whether it changed.
    @discardableResult
    func finish(jobId: String, from allowed: Set<JobState>, to state: JobState, error: JobError? = nil) async throws -> Bool {
        try await database.write { db in
            guard var job = try JobRecord.fetchOne(db, key: jobId), allowed.contains(job.jobState) else { return false }
            if job.jobState == .queued { queue.remove(jobId) }
            job.state = state.rawValue
            job.errorCode = error?.code
            job.errorMessage = error?.message
            job.finishedAt = Self.now
            job.uploadToken = nil
            try job.update(db)
            return true
        }
    }

    /// Ready images whose time ran out.
    func expiredReadyJobs(now: Double) async throws -> [JobRecord] {
        try await database.read { db in
            try JobRecord.fetchAll(db, sql: "SELECT * FROM job WHERE state = 'ready' AND expiresAt <= ?", arguments: [now])
        }
    }

    /// Finished streams whose resume grace ran out (their spool is still on disk).
    func expiredStreams(now: Double) async throws -> [JobRecord] {
        try await database.read { db in
            try JobRecord.fetchAll(
                db, sql: "SELECT * FROM job WHERE delivery = 'stream' AND state = 'done' AND expiresAt <= ?", arguments: [now])
        }
    }

    /// Records that a finished stream's spool was deleted.
    func clearExpiry(jobId: String) async throws {
        try await database.write { db in
            try db.execute(sql: "UPDATE job SET expiresAt = NULL WHERE id = ?", arguments: [jobId])
        }
    }

    /// Stream-mode jobs still waiting or running (their client must stay connected).
    func unfinishedStreamJobs() async throws -> [JobRecord] {
        try await database.read { db in
            try JobRecord.fetchAll(db, sql: "SELECT * FROM job WHERE delivery = 'stream' AND state IN ('queued', 'running')")
        }
    }

    /// After a crash: jobs that were running go back to the front of the queue, in their old order; returns their ids.
    func requeueRunningJobs() async throws -> [String] {
        try await database.write { db in
            let first = try Int64.fetchOne(db, sql: "SELECT MIN(queueOrder) FROM job") ?? 0
            let running = try JobRecord.fetchAll(db, sql: "SELECT * FROM job WHERE state = 'running' ORDER BY queueOrder")
            for (offset, var job) in running.enumerated() {
                job.state = JobState.queued.rawValue
                job.queueOrder = first - Int64(running.count) + Int64(offset)
                job.uploadToken = nil
                try job.update(db)
                queue.insert(job.id, order: job.queueOrder)
            }
            return running.map(\.id)
        }
    }

    /// Deletes jobs that ended before `cutoff` (their chunk rows cascade): failed, cancelled, expired and
    /// retrieved jobs by when they ended, finished streams once their spool is gone. Returns their ids.
    func deleteFinished(before cutoff: Double) async throws -> [String] {
        try await database.write { db in
            let ids = try String.fetchAll(
                db,
                sql: """
                    SELECT id FROM job WHERE (state IN ('failed', 'cancelled', 'expired') AND finishedAt < ?)
                    OR (state = 'done' AND delivery = 'retrieve' AND finishedAt < ?)
                    OR (state = 'done' AND delivery = 'stream' AND expiresAt IS NULL AND readyAt < ?)
                    """,
                arguments: [cutoff, cutoff, cutoff])
            for batch in stride(from: 0, to: ids.count, by: 500) {
                let part = Array(ids[batch..<min(batch + 500, ids.count)])
                try db.execute(sql: "DELETE FROM chunk WHERE jobId IN (\(part.map { _ in "?" }.joined(separator: ",")))", arguments: StatementArguments(part))
                try db.execute(sql: "DELETE FROM job WHERE id IN (\(part.map { _ in "?" }.joined(separator: ",")))", arguments: StatementArguments(part))
            }
            return ids
        }
    }

    /// Rows in the ledger, for `/metrics`.
    func rowCounts() async throws -> (jobs: Int, chunks: Int) {
        try await database.read { db in
            (try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM job") ?? 0, try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM chunk") ?? 0)
        }
    }

    /// Counts by state, for `/metrics`.
    func countsByState() async throws -> [String: Int] {
        try await database.read { db in
            var counts: [String: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT state, COUNT(*) FROM job GROUP BY state") {
                counts[row[0]] = row[1]
            }
            return counts
        }
    }
}
