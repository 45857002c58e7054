import Foundation
import Logging
import PostgresNIO
import RelayProtocol
import ServiceLifecycle

/// The ledger in PostgreSQL (`serve --store postgres://USER@HOST:PORT/DB`): the same jobs, queue and
/// chunk rows as `SQLiteJobStore`, in tables prefixed `chunkrelay_`. Transitions lock the job's row
/// (`FOR UPDATE`); the next job is claimed with `FOR UPDATE SKIP LOCKED`, so concurrent claimers never
/// take the same one. Queue places are counted from the table, not kept in memory, so every
/// connection sees the same ones.
struct PostgresJobStore: JobStore {
    /// The connection pool; a `Service` the gateway runs (queries wait until it runs).
    let client: PostgresClient
    /// Settings for connections of their own (the feed's `LISTEN`).
    let connectionConfiguration: PostgresConnection.Configuration
    /// This instance, as it signs its leases and transfer claims.
    let owner: String
    /// How long a running job stays this instance's without a renewal (the janitor renews every pass).
    let leaseSeconds: Double
    private let logger: Logger

    /// The pool, run beside the gateway's other services.
    var services: [any Service] { [client] }

    /// Connects once to create or upgrade the tables and to put running jobs whose lease ran out back
    /// in the queue (their instance is gone), then returns the store and the requeued jobs' ids. The
    /// pool serves from when the gateway's services run.
    static func open(url: String, owner: String, leaseSeconds: Double, logger: Logger) async throws -> (store: PostgresJobStore, requeued: [String]) {
        let location = try PostgresURL(url)
        let configuration = location.configuration
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
        } catch {
            throw GatewayError(
                .serviceUnavailable, "store_unavailable", "cannot connect to PostgreSQL at \(PostgresURL.redacted(url)): \(PostgresURL.describe(error))")
        }
        let requeued: [String]
        do {
            requeued = try await connection.withTransaction(logger: logger) { connection in
                // One instance at a time creates the tables.
                try await connection.query(
                    "SELECT pg_advisory_xact_lock(hashtext('chunkrelay-schema:' || current_setting('search_path')))", logger: logger)
                if let schema = location.schema {
                    try await connection.query(PostgresQuery(unsafeSQL: "CREATE SCHEMA IF NOT EXISTS \(schema)"), logger: logger)
                }
                for statement in Self.schema { try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger) }
                return try await Self.requeueRunning(
                    "SELECT * FROM chunkrelay_job WHERE state = 'running' AND (lease_until IS NULL OR lease_until < \(Self.now)) ORDER BY queue_order FOR UPDATE SKIP LOCKED",
                    on: connection, logger: logger)
            }
        } catch {
            try? await connection.close()
            throw GatewayError(.serviceUnavailable, "store_unavailable", "preparing the tables in \(PostgresURL.redacted(url)) failed: \(PostgresURL.describe(error))")
        }
        try await connection.close()
        var poolConfiguration = PostgresClient.Configuration(
            host: configuration.host ?? "127.0.0.1", port: configuration.port ?? 5432, username: configuration.username,
            password: configuration.password, database: configuration.database, tls: .disable
        )
        // Queries are short and the event streams take turns; idle connections go back soon, so that many
        // instances (or a test suite's dozens of gateways) stay within the server's max_connections.
        poolConfiguration.options.maximumConnections = 10
        poolConfiguration.options.connectionIdleTimeout = .seconds(10)
        poolConfiguration.options.additionalStartupParameters = configuration.options.additionalStartupParameters
        let client = PostgresClient(configuration: poolConfiguration, backgroundLogger: logger)
        return (PostgresJobStore(client: client, connectionConfiguration: configuration, owner: owner, leaseSeconds: leaseSeconds, logger: logger), requeued)
    }

    static let schema = [
        """
        CREATE TABLE IF NOT EXISTS chunkrelay_job (
            id text PRIMARY KEY, function text NOT NULL, params text NOT NULL, delivery text NOT NULL, state text NOT NULL,
            queue_order bigint NOT NULL, attempt bigint NOT NULL DEFAULT 0, upload_token text, chunk_size bigint NOT NULL,
            image_key text UNIQUE, total_chunks bigint, total_bytes bigint, sha256 text, content_type text,
            error_code text, error_message text, created_at double precision NOT NULL, ready_at double precision,
            expires_at double precision, finished_at double precision,
            stored_chunks bigint NOT NULL DEFAULT 0, stored_bytes bigint NOT NULL DEFAULT 0)
        """,
        "CREATE INDEX IF NOT EXISTS chunkrelay_job_state_order ON chunkrelay_job (state, queue_order)",
        "CREATE INDEX IF NOT EXISTS chunkrelay_job_finished_at ON chunkrelay_job (finished_at)",
        "CREATE SEQUENCE IF NOT EXISTS chunkrelay_queue_order",
        """
        CREATE TABLE IF NOT EXISTS chunkrelay_chunk (
            job_id text NOT NULL REFERENCES chunkrelay_job (id) ON DELETE CASCADE, attempt bigint NOT NULL, idx bigint NOT NULL,
            size bigint NOT NULL, sha256 text NOT NULL, PRIMARY KEY (job_id, attempt, idx))
        """,
        // Chunk bytes apart from the ledger's rows: the ledger is read often, the bytes once or twice.
        """
        CREATE TABLE IF NOT EXISTS chunkrelay_chunk_data (
            job_id text NOT NULL REFERENCES chunkrelay_job (id) ON DELETE CASCADE, attempt bigint NOT NULL, idx bigint NOT NULL,
            bytes bytea NOT NULL, PRIMARY KEY (job_id, attempt, idx))
        """,
        // The bytes are written once and never compressed well (images): no TOAST compression attempts.
        "ALTER TABLE chunkrelay_chunk_data ALTER COLUMN bytes SET STORAGE EXTERNAL",
        // Which instance is sending a ready image, until when (a killed instance's claim runs out).
        "ALTER TABLE chunkrelay_job ADD COLUMN IF NOT EXISTS claim_owner text, ADD COLUMN IF NOT EXISTS claim_until double precision",
        // When some instance last had a client of a stream job (its janitor writes it every pass).
        "ALTER TABLE chunkrelay_job ADD COLUMN IF NOT EXISTS watched_at double precision",
        // Which instance runs a job, until when unless it renews.
        "ALTER TABLE chunkrelay_job ADD COLUMN IF NOT EXISTS lease_owner text, ADD COLUMN IF NOT EXISTS lease_until double precision",
    ]

    static var now: Double { Date().timeIntervalSince1970 }

    func insert(id: String, request: CreateJobRequest, chunkSize: Int, imageKey: String?) async throws -> JobRecord {
        let params = String(decoding: try JSONEncoder().encode(request.params), as: UTF8.self)
        let rows = try await client.query(
            """
            INSERT INTO chunkrelay_job (id, function, params, delivery, state, queue_order, chunk_size, image_key, created_at)
            VALUES (\(id), \(request.function), \(params), \(request.delivery.rawValue), 'queued', nextval('chunkrelay_queue_order'),
                    \(chunkSize), \(imageKey), \(Self.now))
            RETURNING *
            """, logger: logger)
        return try await Self.one(rows)!
    }

    func job(id: String) async throws -> JobRecord? {
        try await Self.one(client.query("SELECT * FROM chunkrelay_job WHERE id = \(id)", logger: logger))
    }

    func job(imageKey: String) async throws -> JobRecord? {
        try await Self.one(client.query("SELECT * FROM chunkrelay_job WHERE image_key = \(imageKey)", logger: logger))
    }

    func queuedPosition(of jobId: String) async throws -> Int? {
        let rows = try await client.query(
            """
            SELECT 1 + (SELECT COUNT(*) FROM chunkrelay_job q WHERE q.state = 'queued' AND q.queue_order < j.queue_order)
            FROM chunkrelay_job j WHERE j.id = \(jobId) AND j.state = 'queued'
            """, logger: logger)
        for try await (position) in rows.decode(Int.self) { return position }
        return nil
    }

    func position(of job: JobRecord) async throws -> Int {
        let rows = try await client.query(
            "SELECT 1 + COUNT(*) FROM chunkrelay_job WHERE state = 'queued' AND queue_order < \(job.queueOrder)", logger: logger)
        for try await (position) in rows.decode(Int.self) { return position }
        return 1
    }

    func startNextAttempt(excluding busyFunctions: Set<String>, limit: Int) async throws -> JobRecord? {
        let busy = Array(busyFunctions)
        return try await client.withTransaction(logger: logger) { connection in
            // Claims take turns, so that the count of running jobs holds across instances (per schema:
            // emulators in other schemas of the database do not wait for these).
            try await connection.query(
                "SELECT pg_advisory_xact_lock(hashtext('chunkrelay-claim:' || current_setting('search_path')))", logger: logger)
            let running = try await Self.scalar(connection.query("SELECT COUNT(*) FROM chunkrelay_job WHERE state = 'running'", logger: logger))
            guard running < limit else { return nil }
            let rows = try await connection.query(
                """
                SELECT * FROM chunkrelay_job WHERE state = 'queued' AND function <> ALL(\(busy))
                ORDER BY queue_order LIMIT 1 FOR UPDATE SKIP LOCKED
                """, logger: logger)
            guard let job = try await Self.one(rows) else { return nil }
            return try await beginAttempt(job.id, error: nil, on: connection)
        }
    }

    func startRetry(jobId: String, after attempt: Int, failure: JobError) async throws -> JobRecord? {
        try await client.withTransaction(logger: logger) { connection in
            guard let job = try await Self.locked(jobId, on: connection, logger: logger), job.jobState == .running, job.attempt == attempt else {
                return nil
            }
            return try await beginAttempt(job.id, error: failure, on: connection)
        }
    }

    /// A new attempt of a locked job, leased to this instance: the next number, a fresh token, the
    /// earlier attempts' chunks forgotten.
    private func beginAttempt(_ id: String, error: JobError?, on connection: PostgresConnection) async throws -> JobRecord {
        let token = RandomToken.make()
        let rows = try await connection.query(
            """
            UPDATE chunkrelay_job SET state = 'running', attempt = attempt + 1, upload_token = \(token),
                stored_chunks = 0, stored_bytes = 0, lease_owner = \(owner), lease_until = \(Self.now + leaseSeconds),
                error_code = COALESCE(\(error?.code), error_code), error_message = COALESCE(\(error?.message), error_message)
            WHERE id = \(id) RETURNING *
            """, logger: logger)
        let job = try await Self.one(rows)!
        try await connection.query("DELETE FROM chunkrelay_chunk WHERE job_id = \(id) AND attempt < \(job.attempt)", logger: logger)
        return job
    }

    func chunk(jobId: String, attempt: Int, index: Int) async throws -> ChunkRecord? {
        let rows = try await client.query(
            "SELECT job_id, attempt, idx, size, sha256 FROM chunkrelay_chunk WHERE job_id = \(jobId) AND attempt = \(attempt) AND idx = \(index)",
            logger: logger)
        return try await Self.chunks(rows).first
    }

    func chunks(jobId: String, attempt: Int, after: Int) async throws -> [ChunkRecord] {
        try await Self.chunks(client.query(
            """
            SELECT job_id, attempt, idx, size, sha256 FROM chunkrelay_chunk
            WHERE job_id = \(jobId) AND attempt = \(attempt) AND idx > \(after) ORDER BY idx
            """, logger: logger))
    }

    func insertChunk(_ chunk: ChunkRecord, chunkSize: Int) async throws -> ChunkInsert {
        try await client.withTransaction(logger: logger) { connection in
            // The job's row lock puts concurrent uploads of one attempt in a line.
            guard let job = try await Self.locked(chunk.jobId, on: connection, logger: logger), job.jobState == .running, job.attempt == chunk.attempt else {
                return .attemptOver
            }
            let existing = try await Self.chunks(connection.query(
                """
                SELECT job_id, attempt, idx, size, sha256 FROM chunkrelay_chunk
                WHERE job_id = \(chunk.jobId) AND attempt = \(chunk.attempt) AND idx = \(chunk.idx)
                """, logger: logger)).first
            if let existing { return existing.sha256 == chunk.sha256 ? .duplicate : .conflict(existing: existing.sha256) }
            // Offsets are index × cap, so only the last chunk may be short.
            if chunk.size < chunkSize {
                let later = try await Self.scalar(connection.query(
                    "SELECT COUNT(*) FROM chunkrelay_chunk WHERE job_id = \(chunk.jobId) AND attempt = \(chunk.attempt) AND idx > \(chunk.idx)",
                    logger: logger))
                if later > 0 { return .shortChunkNotLast }
            }
            let shortEarlier = try await Self.scalar(connection.query(
                """
                SELECT COUNT(*) FROM chunkrelay_chunk WHERE job_id = \(chunk.jobId) AND attempt = \(chunk.attempt)
                AND idx < \(chunk.idx) AND size < \(chunkSize)
                """, logger: logger))
            if shortEarlier > 0 { return .shortChunkNotLast }
            try await connection.query(
                """
                INSERT INTO chunkrelay_chunk (job_id, attempt, idx, size, sha256)
                VALUES (\(chunk.jobId), \(chunk.attempt), \(chunk.idx), \(chunk.size), \(chunk.sha256))
                """, logger: logger)
            try await connection.query(
                "UPDATE chunkrelay_job SET stored_chunks = stored_chunks + 1, stored_bytes = stored_bytes + \(chunk.size) WHERE id = \(chunk.jobId)",
                logger: logger)
            return .stored
        }
    }

    func chunkSummary(jobId: String, attempt: Int, chunkSize: Int) async throws -> ChunkSummary {
        let rows = try await client.query(
            """
            SELECT COUNT(*), COALESCE(SUM(size), 0)::bigint, COALESCE(MAX(idx), -1),
                (SELECT COUNT(*) FROM chunkrelay_chunk s WHERE s.job_id = \(jobId) AND s.attempt = \(attempt)
                    AND s.size <> \(chunkSize) AND s.idx < (SELECT COALESCE(MAX(idx), -1) FROM chunkrelay_chunk m WHERE m.job_id = \(jobId) AND m.attempt = \(attempt)))
            FROM chunkrelay_chunk WHERE job_id = \(jobId) AND attempt = \(attempt)
            """, logger: logger)
        for try await (count, bytes, maxIndex, short) in rows.decode((Int, Int64, Int, Int).self) {
            return ChunkSummary(count: count, bytes: bytes, maxIndex: maxIndex, shortBeforeLast: short)
        }
        return ChunkSummary(count: 0, bytes: 0, maxIndex: -1, shortBeforeLast: 0)
    }

    func markComplete(jobId: String, attempt: Int, manifest: CompleteRequest, expiresAt: Double) async throws -> Bool {
        let rows = try await client.query(
            """
            UPDATE chunkrelay_job SET state = CASE WHEN delivery = 'retrieve' THEN 'ready' ELSE 'done' END,
                total_chunks = \(manifest.chunks), total_bytes = \(manifest.bytes), sha256 = \(manifest.sha256),
                content_type = \(manifest.contentType), ready_at = \(Self.now), expires_at = \(expiresAt),
                upload_token = NULL, error_code = NULL, error_message = NULL
            WHERE id = \(jobId) AND state = 'running' AND attempt = \(attempt)
            RETURNING id
            """, logger: logger)
        return try await Self.rowCount(rows) > 0
    }

    /// An expiry leaves an image another instance is sending; a failure is recorded only by the instance
    /// that holds the job's lease (one whose lease ran out, and whose job was taken over, reports late).
    @discardableResult
    func finish(jobId: String, from allowed: Set<JobState>, to state: JobState, error: JobError?) async throws -> Bool {
        let states = allowed.map(\.rawValue)
        let rows = try await client.query(
            """
            UPDATE chunkrelay_job SET state = \(state.rawValue), error_code = \(error?.code), error_message = \(error?.message),
                finished_at = \(Self.now), upload_token = NULL
            WHERE id = \(jobId) AND state = ANY(\(states))
                AND (\(state != .expired) OR claim_owner IS NULL OR claim_until < \(Self.now))
                AND (\(state != .failed) OR lease_owner IS NULL OR lease_owner = \(owner))
            RETURNING id
            """, logger: logger)
        return try await Self.rowCount(rows) > 0
    }

    func expiredReadyJobs(now: Double) async throws -> [JobRecord] {
        try await Self.all(client.query("SELECT * FROM chunkrelay_job WHERE state = 'ready' AND expires_at <= \(now)", logger: logger))
    }

    func expiredStreams(now: Double) async throws -> [JobRecord] {
        try await Self.all(client.query(
            "SELECT * FROM chunkrelay_job WHERE delivery = 'stream' AND state = 'done' AND expires_at <= \(now)", logger: logger))
    }

    func clearExpiry(jobId: String) async throws {
        try await client.query("UPDATE chunkrelay_job SET expires_at = NULL WHERE id = \(jobId)", logger: logger)
    }

    func unfinishedStreamJobs() async throws -> [JobRecord] {
        try await Self.all(client.query(
            "SELECT * FROM chunkrelay_job WHERE delivery = 'stream' AND state IN ('queued', 'running')", logger: logger))
    }

    /// This instance's running jobs (the others' are theirs).
    func requeueRunningJobs() async throws -> [String] {
        try await client.withTransaction(logger: logger) { connection in
            try await Self.requeueRunning(
                "SELECT * FROM chunkrelay_job WHERE state = 'running' AND lease_owner = \(owner) ORDER BY queue_order FOR UPDATE SKIP LOCKED",
                on: connection, logger: logger)
        }
    }

    func renewLeases() async throws {
        try await client.query(
            "UPDATE chunkrelay_job SET lease_until = \(Self.now + leaseSeconds) WHERE state = 'running' AND lease_owner = \(owner)", logger: logger)
    }

    func requeueExpiredLeases() async throws -> [String] {
        try await client.withTransaction(logger: logger) { connection in
            try await Self.requeueRunning(
                "SELECT * FROM chunkrelay_job WHERE state = 'running' AND lease_until < \(Self.now) ORDER BY queue_order FOR UPDATE SKIP LOCKED",
                on: connection, logger: logger)
        }
    }

    /// The running jobs `select` finds (locked, in queue order) back to the front of the queue, inside
    /// the caller's transaction.
    private static func requeueRunning(_ select: PostgresQuery, on connection: PostgresConnection, logger: Logger) async throws -> [String] {
        let running = try await all(connection.query(select, logger: logger))
        guard !running.isEmpty else { return [] }
        let first = try await scalar(connection.query("SELECT COALESCE(MIN(queue_order), 0) FROM chunkrelay_job", logger: logger))
        for (offset, job) in running.enumerated() {
            let order = Int64(first) - Int64(running.count) + Int64(offset)
            try await connection.query(
                "UPDATE chunkrelay_job SET state = 'queued', queue_order = \(order), upload_token = NULL, lease_owner = NULL, lease_until = NULL WHERE id = \(job.id)",
                logger: logger)
        }
        return running.map(\.id)
    }

    func deleteFinished(before cutoff: Double) async throws -> [String] {
        let rows = try await client.query(
            """
            DELETE FROM chunkrelay_job WHERE (state IN ('failed', 'cancelled', 'expired') AND finished_at < \(cutoff))
            OR (state = 'done' AND delivery = 'retrieve' AND finished_at < \(cutoff))
            OR (state = 'done' AND delivery = 'stream' AND expires_at IS NULL AND ready_at < \(cutoff))
            RETURNING id
            """, logger: logger)
        var ids: [String] = []
        for try await (id) in rows.decode(String.self) { ids.append(id) }
        return ids
    }

    func rowCounts() async throws -> (jobs: Int, chunks: Int) {
        let rows = try await client.query(
            "SELECT (SELECT COUNT(*) FROM chunkrelay_job), (SELECT COUNT(*) FROM chunkrelay_chunk)", logger: logger)
        for try await (jobs, chunks) in rows.decode((Int, Int).self) { return (jobs, chunks) }
        return (0, 0)
    }

    func countsByState() async throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for try await (state, count) in try await client.query("SELECT state, COUNT(*) FROM chunkrelay_job GROUP BY state", logger: logger)
            .decode((String, Int).self)
        {
            counts[state] = count
        }
        return counts
    }

    func claimTransfer(jobId: String, until: Double) async throws -> Bool {
        let rows = try await client.query(
            """
            UPDATE chunkrelay_job SET claim_owner = \(owner), claim_until = \(until)
            WHERE id = \(jobId) AND state = 'ready' AND (claim_owner IS NULL OR claim_owner = \(owner) OR claim_until < \(Self.now))
            RETURNING id
            """, logger: logger)
        return try await Self.rowCount(rows) > 0
    }

    func releaseTransfer(jobId: String) async throws {
        try await client.query(
            "UPDATE chunkrelay_job SET claim_owner = NULL, claim_until = NULL WHERE id = \(jobId) AND claim_owner = \(owner)", logger: logger)
    }

    func markWatched(_ jobIds: [String], at time: Double) async throws {
        guard !jobIds.isEmpty else { return }
        try await client.query("UPDATE chunkrelay_job SET watched_at = \(time) WHERE id = ANY(\(jobIds))", logger: logger)
    }

    func lastWatched(_ jobIds: [String]) async throws -> [String: Double] {
        guard !jobIds.isEmpty else { return [:] }
        var seen: [String: Double] = [:]
        let rows = try await client.query(
            "SELECT id, watched_at FROM chunkrelay_job WHERE id = ANY(\(jobIds)) AND watched_at IS NOT NULL", logger: logger)
        for try await (id, time) in rows.decode((String, Double).self) { seen[id] = time }
        return seen
    }

    // MARK: - Rows

    private static func locked(_ id: String, on connection: PostgresConnection, logger: Logger) async throws -> JobRecord? {
        try await one(connection.query("SELECT * FROM chunkrelay_job WHERE id = \(id) FOR UPDATE", logger: logger))
    }

    private static func one(_ rows: PostgresRowSequence) async throws -> JobRecord? {
        for try await row in rows { return try job(row) }
        return nil
    }

    private static func all(_ rows: PostgresRowSequence) async throws -> [JobRecord] {
        var jobs: [JobRecord] = []
        for try await row in rows { jobs.append(try job(row)) }
        return jobs
    }

    private static func chunks(_ rows: PostgresRowSequence) async throws -> [ChunkRecord] {
        var chunks: [ChunkRecord] = []
        for try await (jobId, attempt, idx, size, sha256) in rows.decode((String, Int, Int, Int, String).self) {
            chunks.append(ChunkRecord(jobId: jobId, attempt: attempt, idx: idx, size: size, sha256: sha256))
        }
        return chunks
    }

    /// The one integer a query like `SELECT COUNT(*)` answers.
    private static func scalar(_ rows: PostgresRowSequence) async throws -> Int {
        for try await (value) in rows.decode(Int.self) { return value }
        return 0
    }

    /// How many rows a query answered (`UPDATE … RETURNING id`: how many it changed).
    private static func rowCount(_ rows: PostgresRowSequence) async throws -> Int {
        var count = 0
        for try await _ in rows { count += 1 }
        return count
    }

    private static func job(_ row: PostgresRow) throws -> JobRecord {
        let r = row.makeRandomAccess()
        var job = JobRecord(
            id: try r["id"].decode(String.self), function: try r["function"].decode(String.self), params: try r["params"].decode(String.self),
            delivery: try r["delivery"].decode(String.self), state: try r["state"].decode(String.self),
            queueOrder: try r["queue_order"].decode(Int64.self), attempt: try r["attempt"].decode(Int.self),
            uploadToken: try r["upload_token"].decode(String?.self), chunkSize: try r["chunk_size"].decode(Int.self),
            imageKey: try r["image_key"].decode(String?.self), createdAt: try r["created_at"].decode(Double.self)
        )
        job.totalChunks = try r["total_chunks"].decode(Int?.self)
        job.totalBytes = try r["total_bytes"].decode(Int64?.self)
        job.sha256 = try r["sha256"].decode(String?.self)
        job.contentType = try r["content_type"].decode(String?.self)
        job.errorCode = try r["error_code"].decode(String?.self)
        job.errorMessage = try r["error_message"].decode(String?.self)
        job.readyAt = try r["ready_at"].decode(Double?.self)
        job.expiresAt = try r["expires_at"].decode(Double?.self)
        job.finishedAt = try r["finished_at"].decode(Double?.self)
        job.storedChunks = try r["stored_chunks"].decode(Int.self)
        job.storedBytes = try r["stored_bytes"].decode(Int64.self)
        return job
    }
}
