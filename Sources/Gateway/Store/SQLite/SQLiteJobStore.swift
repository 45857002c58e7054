import Foundation
import GRDB
import RelayProtocol
import ServiceLifecycle

/// The SQLite ledger (WAL): jobs, their chunks' digests and their image keys. The default store, for
/// one gateway instance. A transition is one write transaction (SQLite runs them one at a time), in
/// which `decide` sees the row and the write it returns is applied.
///
/// Every write that a client or function is told about is committed before the answer goes out.
/// `synchronous=NORMAL` in WAL mode: a commit reaches the operating system before the answer, so a
/// crashed or killed gateway loses nothing; only a power loss or kernel crash can lose the last
/// commits (their fsync waits for the next checkpoint), which for an emulator whose jobs a client
/// can rerun is the right trade for not paying an fsync per chunk.
struct SQLiteJobStore: JobLedger {
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
        migrator.registerMigration("v4") { db in
            // An index is given to a digest before its bytes are written (`written` false until they
            // are), so a conflicting upload never writes; and the bytes of an image its transfers
            // delivered. The same indexes as the PostgreSQL store's.
            try db.alter(table: "chunk") { t in
                t.add(column: "written", .boolean).notNull().defaults(to: true)
            }
            try db.alter(table: "job") { t in
                t.add(column: "delivered", .text).notNull().defaults(to: "")
            }
        }
        return migrator
    }

    /// The store has nothing to run beside the gateway.
    var services: [any Service] { [] }

    func insert(_ job: JobRecord) async throws -> JobRecord {
        try await database.write { db in
            var job = job
            job.queueOrder = (try Int64.fetchOne(db, sql: "SELECT MAX(queueOrder) FROM job") ?? 0) + 1
            try job.insert(db)
            queue.insert(job.id, order: job.queueOrder)
            return job
        }
    }

    func job(id: String) async throws -> JobRecord? {
        try await database.read { db in try Self.jobRow(id, in: db) }
    }

    func job(imageKey: String) async throws -> JobRecord? {
        try await database.read { db in
            try JobRecord.fetchOne(db, sql: "SELECT * FROM job WHERE imageKey = ?", arguments: [imageKey])
        }
    }

    func queuedPosition(of jobId: String) async throws -> Int? {
        queue.position(of: jobId)
    }

    /// From memory, or counted in the ledger when the job left the queue since it was read.
    func position(of job: JobRecord) async throws -> Int {
        if let position = queue.position(of: job.id) { return position }
        return try await database.read { db in
            1 + (try Int.fetchOne(
                db, sql: "SELECT COUNT(*) FROM job WHERE state = 'queued' AND queueOrder < ?", arguments: [job.queueOrder]
            ) ?? 0)
        }
    }

    func frontOfQueue() async throws -> Int64 {
        try await database.read { db in try Int64.fetchOne(db, sql: "SELECT MIN(queueOrder) FROM job") ?? 0 }
    }

    func chunk(jobId: String, attempt: Int, index: Int) async throws -> ChunkRecord? {
        try await database.read { db in try Self.chunkRow(jobId, attempt, index, in: db) }
    }

    func writtenChunks(jobId: String, attempt: Int, after: Int) async throws -> [ChunkRecord] {
        try await database.read { db in
            try ChunkRecord.fetchAll(
                db.cachedStatement(sql: "SELECT * FROM chunk WHERE jobId = ? AND attempt = ? AND idx > ? AND written ORDER BY idx"),
                arguments: [jobId, attempt, after])
        }
    }

    func chunkSummary(jobId: String, attempt: Int, chunkSize: Int) async throws -> ChunkSummary {
        try await database.read { db in
            let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT COUNT(*), COALESCE(SUM(size), 0), COALESCE(MAX(idx), -1) FROM chunk
                    WHERE jobId = ? AND attempt = ? AND written
                    """,
                arguments: [jobId, attempt])!
            let maxIndex: Int = row[2]
            let short = try Int.fetchOne(
                db, sql: "SELECT COUNT(*) FROM chunk WHERE jobId = ? AND attempt = ? AND written AND idx < ? AND size <> ?",
                arguments: [jobId, attempt, maxIndex, chunkSize]) ?? 0
            let unwritten = try Int.fetchOne(
                db, sql: "SELECT COUNT(*) FROM chunk WHERE jobId = ? AND attempt = ? AND NOT written", arguments: [jobId, attempt]) ?? 0
            return ChunkSummary(count: row[0], bytes: row[1], maxIndex: maxIndex, shortBeforeLast: short, unwritten: unwritten)
        }
    }

    func update<T: Sendable>(
        jobId: String, probe: ChunkProbe?, _ decide: @Sendable (JobRecord, ChunkFacts?) throws -> (LedgerWrite?, T)
    ) async throws -> T? {
        try await database.write { db in
            guard let job = try Self.jobRow(jobId, in: db) else { return nil }
            let facts = try probe.map { try Self.facts(about: $0, of: jobId, in: db) }
            let (write, result) = try decide(job, facts)
            if let write { try apply(write, replacing: job, in: db) }
            return result
        }
    }

    func updateNextQueued<T: Sendable>(
        excluding busyFunctions: Set<String>, _ decide: @Sendable (JobRecord, _ running: Int) throws -> (LedgerWrite?, T)
    ) async throws -> T? {
        try await database.write { db in
            let running = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM job WHERE state = 'running'") ?? 0
            let placeholders = busyFunctions.map { _ in "?" }.joined(separator: ",")
            let filter = busyFunctions.isEmpty ? "" : "AND function NOT IN (\(placeholders))"
            guard let job = try JobRecord.fetchOne(
                db, sql: "SELECT * FROM job WHERE state = 'queued' \(filter) ORDER BY queueOrder LIMIT 1",
                arguments: StatementArguments(Array(busyFunctions))
            ) else {
                return nil
            }
            let (write, result) = try decide(job, running)
            if let write { try apply(write, replacing: job, in: db) }
            return result
        }
    }

    private static func facts(about probe: ChunkProbe, of jobId: String, in db: Database) throws -> ChunkFacts {
        let existing = try chunkRow(jobId, probe.attempt, probe.index, in: db)
        guard probe.neighbours else { return ChunkFacts(existing: existing, laterChunk: false, shortChunkBefore: false) }
        let later = try Bool.fetchOne(
            db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM chunk WHERE jobId = ? AND attempt = ? AND idx > ?)"),
            arguments: [jobId, probe.attempt, probe.index]) ?? false
        let shortBefore = try Bool.fetchOne(
            db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM chunk WHERE jobId = ? AND attempt = ? AND idx < ? AND size < ?)"),
            arguments: [jobId, probe.attempt, probe.index, probe.chunkSize]) ?? false
        return ChunkFacts(existing: existing, laterChunk: later, shortChunkBefore: shortBefore)
    }

    // Every chunk upload runs these a few times. Compiled once per connection: GRDB's query interface
    // built and prepared the SQL anew each time, and in `perf` that was a tenth of the gateway's CPU
    // during ingest at a 256 KiB cap (SQL generation, SQLite's parser and GRDB's authorizer).
    private static func jobRow(_ id: String, in db: Database) throws -> JobRecord? {
        try JobRecord.fetchOne(db.cachedStatement(sql: "SELECT * FROM job WHERE id = ?"), arguments: [id])
    }

    private static func chunkRow(_ jobId: String, _ attempt: Int, _ index: Int, in db: Database) throws -> ChunkRecord? {
        try ChunkRecord.fetchOne(
            db.cachedStatement(sql: "SELECT * FROM chunk WHERE jobId = ? AND attempt = ? AND idx = ?"), arguments: [jobId, attempt, index])
    }

    /// Writes what a transition decided, and mirrors the queue's places in memory.
    private func apply(_ write: LedgerWrite, replacing old: JobRecord, in db: Database) throws {
        if write.job != old { try write.job.update(db) }
        if write.dropEarlierChunks {
            try db.execute(sql: "DELETE FROM chunk WHERE jobId = ? AND attempt < ?", arguments: [write.job.id, write.job.attempt])
        }
        if var reserve = write.reserve {
            reserve.written = false
            try reserve.insert(db)
        }
        if let written = write.written {
            try db.cachedStatement(sql: "UPDATE chunk SET written = 1 WHERE jobId = ? AND attempt = ? AND idx = ?")
                .execute(arguments: [written.jobId, written.attempt, written.idx])
        }
        if old.state == .queued, write.job.state != .queued { queue.remove(old.id) }
        if write.job.state == .queued, old.state != .queued || old.queueOrder != write.job.queueOrder {
            queue.remove(old.id)
            queue.insert(write.job.id, order: write.job.queueOrder)
        }
    }

    /// One statement for all the filters (a janitor pass asks for several sets at once).
    func jobs(_ filters: [JobFilter]) async throws -> [JobRecord] {
        guard !filters.isEmpty else { return [] }
        var arguments = StatementArguments()
        var alternatives: [String] = []
        for filter in filters {
            var conditions = ["state IN (\(filter.states.map { _ in "?" }.joined(separator: ",")))"]
            arguments += StatementArguments(filter.states.map(\.rawValue))
            if let delivery = filter.delivery {
                conditions.append("delivery = ?")
                arguments += [delivery.rawValue]
            }
            if let time = filter.expiresBy {
                conditions.append("expiresAt <= ?")
                arguments += [time]
            }
            if filter.noExpiry { conditions.append("expiresAt IS NULL") }
            if let time = filter.finishedBefore {
                conditions.append("finishedAt < ?")
                arguments += [time]
            }
            if let time = filter.readyBefore {
                conditions.append("readyAt < ?")
                arguments += [time]
            }
            alternatives.append("(" + conditions.joined(separator: " AND ") + ")")
        }
        let sql = "SELECT * FROM job WHERE \(alternatives.joined(separator: " OR ")) ORDER BY queueOrder"
        let bound = arguments
        return try await database.read { db in try JobRecord.fetchAll(db, sql: sql, arguments: bound) }
    }

    func delete(ids: [String]) async throws {
        try await database.write { db in
            for batch in stride(from: 0, to: ids.count, by: 500) {
                let part = Array(ids[batch..<min(batch + 500, ids.count)])
                let placeholders = part.map { _ in "?" }.joined(separator: ",")
                try db.execute(sql: "DELETE FROM chunk WHERE jobId IN (\(placeholders))", arguments: StatementArguments(part))
                try db.execute(sql: "DELETE FROM job WHERE id IN (\(placeholders))", arguments: StatementArguments(part))
                for id in part { queue.remove(id) }
            }
        }
    }

    func rowCounts() async throws -> (jobs: Int, chunks: Int) {
        try await database.read { db in
            (try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM job") ?? 0, try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM chunk") ?? 0)
        }
    }

    func countsByState() async throws -> [JobState: Int] {
        try await database.read { db in
            var counts: [JobState: Int] = [:]
            // A state this build does not know is left out (reading that job is the error), so that one odd
            // row does not stop new jobs, whose queue bound is counted here.
            for row in try Row.fetchAll(db, sql: "SELECT state, COUNT(*) FROM job GROUP BY state") {
                if let state = JobState(rawValue: row[0]) { counts[state] = row[1] }
            }
            return counts
        }
    }
}
