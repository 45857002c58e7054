import Foundation
import Logging
import PostgresNIO
import RelayProtocol
import ServiceLifecycle

/// The ledger in PostgreSQL (`serve --store postgres://USER@HOST:PORT/DB`): the same jobs, queue and
/// chunk rows as `SQLiteJobStore`, in tables prefixed `chunkrelay_`, plus what instances sharing it
/// coordinate (`ClusterCoordination`). A transition locks the job's row (`FOR UPDATE`); instances take
/// the next job one at a time (an advisory lock), so they never take the same one, and a row another
/// transition holds for a moment is waited for, never skipped (a skipped job would wait for a wake-up
/// that may not come). Queue places are counted from the table, so every connection sees the same ones.
struct PostgresJobStore: JobLedger, ClusterCoordination {
    /// The connection pool; a `Service` the gateway runs (queries wait until it runs).
    let client: PostgresClient
    /// Settings for connections of their own (the feed's `LISTEN`).
    let connectionConfiguration: PostgresConnection.Configuration
    /// This instance, as it signs its leases and transfer claims.
    let instance: String
    /// How long a running job stays this instance's without a renewal (the janitor renews every pass).
    let leaseSeconds: Double
    /// The `NOTIFY` channel of the instances sharing these tables (see `notifyChannel(schema:)`).
    let notifyChannel: String
    private let logger: Logger

    /// The pool, run beside the gateway's other services.
    var services: [any Service] { [client] }

    /// Connects once to create or upgrade the tables, then returns the store; the pool serves from when
    /// the gateway's services run. (Running jobs of an instance that is gone are taken over by the
    /// janitor's first look at the leases.)
    static func open(url: String, instance: String, leaseSeconds: Double, logger: Logger) async throws -> PostgresJobStore {
        let location = try PostgresURL(url)
        let configuration = location.configuration
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
        } catch {
            throw GatewayError(
                .serviceUnavailable, .storeUnavailable, "cannot connect to PostgreSQL at \(PostgresURL.redacted(url)): \(PostgresURL.describe(error))")
        }
        let schema: String
        do {
            schema = try await connection.withTransaction(logger: logger) { connection in
                // One instance at a time creates the tables.
                try await connection.query(
                    "SELECT pg_advisory_xact_lock(hashtext('chunkrelay-schema:' || current_setting('search_path')))", logger: logger)
                if let schema = location.schema {
                    try await connection.query(PostgresQuery(unsafeSQL: "CREATE SCHEMA IF NOT EXISTS \(schema)"), logger: logger)
                }
                for statement in Self.schema { try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger) }
                for try await name in try await connection.query("SELECT current_schema()", logger: logger).decode(String.self) { return name }
                return "public"
            }
        } catch {
            try? await connection.close()
            throw GatewayError(.serviceUnavailable, .storeUnavailable, "preparing the tables in \(PostgresURL.redacted(url)) failed: \(PostgresURL.describe(error))")
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
        return PostgresJobStore(
            client: client, connectionConfiguration: configuration, instance: instance, leaseSeconds: leaseSeconds,
            notifyChannel: notifyChannel(schema: schema), logger: logger)
    }

    /// `chunkrelay.SCHEMA`: `NOTIFY` reaches every session of the database, so instances on other
    /// schemas (another deployment, or the test suite's gateways, a schema each) must not hear these
    /// notices; each one costs every listener a look at its queue. A channel is an identifier (63
    /// bytes at most): a longer or quoted schema name is hashed instead.
    static func notifyChannel(schema: String) -> String {
        let readable = "chunkrelay.\(schema)"
        if readable.utf8.count <= 63, !schema.contains("\"") { return readable }
        return "chunkrelay.\(ContentDigest(of: Array(schema.utf8)).hex.prefix(32))"
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
        // Readers' presence per instance (the column above, one per job, could not say whose a mark was).
        """
        CREATE TABLE IF NOT EXISTS chunkrelay_presence (
            job_id text NOT NULL REFERENCES chunkrelay_job (id) ON DELETE CASCADE, instance text NOT NULL,
            seen_at double precision NOT NULL, PRIMARY KEY (job_id, instance))
        """,
        // Which instance runs a job, until when unless it renews.
        "ALTER TABLE chunkrelay_job ADD COLUMN IF NOT EXISTS lease_owner text, ADD COLUMN IF NOT EXISTS lease_until double precision",
        // An index is given to a digest before its bytes are written; the bytes an image's transfers delivered.
        "ALTER TABLE chunkrelay_chunk ADD COLUMN IF NOT EXISTS written boolean NOT NULL DEFAULT true",
        "ALTER TABLE chunkrelay_job ADD COLUMN IF NOT EXISTS delivered text NOT NULL DEFAULT ''",
        // The same indexes as the SQLite ledger's.
        "CREATE INDEX IF NOT EXISTS chunkrelay_job_queue_order ON chunkrelay_job (queue_order)",
        "CREATE INDEX IF NOT EXISTS chunkrelay_job_ready_at ON chunkrelay_job (ready_at)",
    ]

    static var now: Double { Date().timeIntervalSince1970 }

    func insert(_ job: JobRecord) async throws -> JobRecord {
        let rows = try await client.query(
            """
            INSERT INTO chunkrelay_job (id, function, params, delivery, state, queue_order, chunk_size, image_key, created_at)
            VALUES (\(job.id), \(job.function), \(job.params), \(job.delivery.rawValue), \(job.state.rawValue),
                    nextval('chunkrelay_queue_order'), \(job.chunkSize), \(job.imageKey), \(job.createdAt))
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

    func frontOfQueue() async throws -> Int64 {
        Int64(try await Self.scalar(client.query("SELECT COALESCE(MIN(queue_order), 0) FROM chunkrelay_job", logger: logger)))
    }

    func chunk(jobId: String, attempt: Int, index: Int) async throws -> ChunkRecord? {
        try await client.withConnection { connection in
            try await Self.chunk(jobId: jobId, attempt: attempt, index: index, on: connection, logger: logger)
        }
    }

    func writtenChunks(jobId: String, attempt: Int, after: Int) async throws -> [ChunkRecord] {
        try await Self.chunks(client.query(
            """
            SELECT job_id, attempt, idx, size, sha256, written FROM chunkrelay_chunk
            WHERE job_id = \(jobId) AND attempt = \(attempt) AND idx > \(after) AND written ORDER BY idx
            """, logger: logger))
    }

    func chunkSummary(jobId: String, attempt: Int, chunkSize: Int) async throws -> ChunkSummary {
        let rows = try await client.query(
            """
            SELECT COUNT(*) FILTER (WHERE written), COALESCE(SUM(size) FILTER (WHERE written), 0)::bigint,
                COALESCE(MAX(idx) FILTER (WHERE written), -1), COUNT(*) FILTER (WHERE NOT written),
                (SELECT COUNT(*) FROM chunkrelay_chunk s WHERE s.job_id = \(jobId) AND s.attempt = \(attempt) AND s.written
                    AND s.size <> \(chunkSize) AND s.idx < (SELECT COALESCE(MAX(idx), -1) FROM chunkrelay_chunk m
                        WHERE m.job_id = \(jobId) AND m.attempt = \(attempt) AND m.written))
            FROM chunkrelay_chunk WHERE job_id = \(jobId) AND attempt = \(attempt)
            """, logger: logger)
        for try await (count, bytes, maxIndex, unwritten, short) in rows.decode((Int, Int64, Int, Int, Int).self) {
            return ChunkSummary(count: count, bytes: bytes, maxIndex: maxIndex, shortBeforeLast: short, unwritten: unwritten)
        }
        return ChunkSummary(count: 0, bytes: 0, maxIndex: -1, shortBeforeLast: 0, unwritten: 0)
    }

    func update<T: Sendable>(
        jobId: String, probe: ChunkProbe?, _ decide: @Sendable (JobRecord, ChunkFacts?) throws -> (LedgerWrite?, T)
    ) async throws -> T? {
        try await client.withTransaction(logger: logger) { connection in
            guard var job = try await Self.one(connection.query("SELECT * FROM chunkrelay_job WHERE id = \(jobId) FOR UPDATE", logger: logger)) else {
                return nil
            }
            job.cluster?.watchedAt = try await watchedElsewhere(jobId, on: connection)
            var facts: ChunkFacts?
            if let probe { facts = try await Self.facts(about: probe, of: jobId, on: connection, logger: logger) }
            let (write, result) = try decide(job, facts)
            if let write { try await apply(write, replacing: job, on: connection) }
            return result
        }
    }

    func updateNextQueued<T: Sendable>(
        excluding busyFunctions: Set<String>, _ decide: @Sendable (JobRecord, _ running: Int) throws -> (LedgerWrite?, T)
    ) async throws -> T? {
        let busy = Array(busyFunctions)
        return try await client.withTransaction(logger: logger) { connection in
            // Takes turns, so that the count of running jobs the limit is decided on holds across instances
            // (per schema: emulators in other schemas of the database do not wait for these).
            try await connection.query(
                "SELECT pg_advisory_xact_lock(hashtext('chunkrelay-claim:' || current_setting('search_path')))", logger: logger)
            let running = try await Self.scalar(connection.query("SELECT COUNT(*) FROM chunkrelay_job WHERE state = 'running'", logger: logger))
            let rows = try await connection.query(
                """
                SELECT * FROM chunkrelay_job WHERE state = 'queued' AND function <> ALL(\(busy))
                ORDER BY queue_order LIMIT 1 FOR UPDATE
                """, logger: logger)
            guard var job = try await Self.one(rows) else { return nil }
            job.cluster?.watchedAt = try await watchedElsewhere(job.id, on: connection)
            let (write, result) = try decide(job, running)
            if let write { try await apply(write, replacing: job, on: connection) }
            return result
        }
    }

    /// When another instance last recorded a reader of the job.
    private func watchedElsewhere(_ jobId: String, on connection: PostgresConnection) async throws -> Double? {
        let rows = try await connection.query(
            "SELECT MAX(seen_at) FROM chunkrelay_presence WHERE job_id = \(jobId) AND instance <> \(instance)", logger: logger)
        for try await (seen) in rows.decode(Double?.self) { return seen }
        return nil
    }

    private static func facts(about probe: ChunkProbe, of jobId: String, on connection: PostgresConnection, logger: Logger) async throws -> ChunkFacts {
        let existing = try await chunk(jobId: jobId, attempt: probe.attempt, index: probe.index, on: connection, logger: logger)
        guard probe.neighbours else { return ChunkFacts(existing: existing, laterChunk: false, shortChunkBefore: false) }
        let rows = try await connection.query(
            """
            SELECT EXISTS (SELECT 1 FROM chunkrelay_chunk WHERE job_id = \(jobId) AND attempt = \(probe.attempt) AND idx > \(probe.index)),
                EXISTS (SELECT 1 FROM chunkrelay_chunk WHERE job_id = \(jobId) AND attempt = \(probe.attempt) AND idx < \(probe.index)
                    AND size < \(probe.chunkSize))
            """, logger: logger)
        for try await (later, shortBefore) in rows.decode((Bool, Bool).self) {
            return ChunkFacts(existing: existing, laterChunk: later, shortChunkBefore: shortBefore)
        }
        return ChunkFacts(existing: existing, laterChunk: false, shortChunkBefore: false)
    }

    /// Writes what a transition decided: the row whole, and the chunk rows it touches.
    private func apply(_ write: LedgerWrite, replacing old: JobRecord, on connection: PostgresConnection) async throws {
        let job = write.job
        if job != old {
            let cluster = job.cluster ?? ClusterColumns()
            try await connection.query(
                """
                UPDATE chunkrelay_job SET state = \(job.state.rawValue), queue_order = \(job.queueOrder), attempt = \(job.attempt),
                    upload_token = \(job.uploadToken), total_chunks = \(job.totalChunks), total_bytes = \(job.totalBytes),
                    sha256 = \(job.sha256), content_type = \(job.contentType), error_code = \(job.errorCode),
                    error_message = \(job.errorMessage), ready_at = \(job.readyAt), expires_at = \(job.expiresAt),
                    finished_at = \(job.finishedAt), stored_chunks = \(job.storedChunks), stored_bytes = \(job.storedBytes),
                    delivered = \(job.delivered), claim_owner = \(cluster.claimOwner), claim_until = \(cluster.claimUntil),
                    lease_owner = \(cluster.leaseOwner), lease_until = \(cluster.leaseUntil)
                WHERE id = \(job.id)
                """, logger: logger)
        }
        if write.dropEarlierChunks {
            try await connection.query("DELETE FROM chunkrelay_chunk WHERE job_id = \(job.id) AND attempt < \(job.attempt)", logger: logger)
        }
        if let chunk = write.reserve {
            try await connection.query(
                """
                INSERT INTO chunkrelay_chunk (job_id, attempt, idx, size, sha256, written)
                VALUES (\(chunk.jobId), \(chunk.attempt), \(chunk.idx), \(chunk.size), \(chunk.sha256), false)
                """, logger: logger)
        }
        if let chunk = write.written {
            try await connection.query(
                "UPDATE chunkrelay_chunk SET written = true WHERE job_id = \(chunk.jobId) AND attempt = \(chunk.attempt) AND idx = \(chunk.idx)",
                logger: logger)
        }
    }

    /// One statement for all the filters (a janitor pass asks for several sets at once).
    func jobs(_ filters: [JobFilter]) async throws -> [JobRecord] {
        guard !filters.isEmpty else { return [] }
        var binds = PostgresBindings()
        var alternatives: [String] = []
        for filter in filters {
            func bind(_ value: some PostgresDynamicTypeEncodable) -> String {
                binds.append(value)
                return "$\(binds.count)"
            }
            var conditions = ["state = ANY(\(bind(filter.states.map(\.rawValue))))"]
            if let delivery = filter.delivery { conditions.append("delivery = \(bind(delivery.rawValue))") }
            if let time = filter.expiresBy { conditions.append("expires_at <= \(bind(time))") }
            if filter.noExpiry { conditions.append("expires_at IS NULL") }
            if let time = filter.finishedBefore { conditions.append("finished_at < \(bind(time))") }
            if let time = filter.readyBefore { conditions.append("ready_at < \(bind(time))") }
            alternatives.append("(" + conditions.joined(separator: " AND ") + ")")
        }
        let sql = "SELECT * FROM chunkrelay_job WHERE \(alternatives.joined(separator: " OR ")) ORDER BY queue_order"
        return try await Self.all(client.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger))
    }

    func delete(ids: [String]) async throws {
        guard !ids.isEmpty else { return }
        try await client.query("DELETE FROM chunkrelay_job WHERE id = ANY(\(ids))", logger: logger)
    }

    func rowCounts() async throws -> (jobs: Int, chunks: Int) {
        let rows = try await client.query(
            "SELECT (SELECT COUNT(*) FROM chunkrelay_job), (SELECT COUNT(*) FROM chunkrelay_chunk)", logger: logger)
        for try await (jobs, chunks) in rows.decode((Int, Int).self) { return (jobs, chunks) }
        return (0, 0)
    }

    func countsByState() async throws -> [JobState: Int] {
        var counts: [JobState: Int] = [:]
        for try await (state, count) in try await client.query("SELECT state, COUNT(*) FROM chunkrelay_job GROUP BY state", logger: logger)
            .decode((String, Int).self)
        {
            // A state this build does not know is left out (reading that job is the error), so that one
            // odd row does not stop new jobs, whose queue bound is counted here.
            if let state = JobState(rawValue: state) { counts[state] = count }
        }
        return counts
    }

    // MARK: - Coordination

    func renewLeases(now: Double) async throws {
        try await client.query(
            "UPDATE chunkrelay_job SET lease_until = \(now + leaseSeconds) WHERE state = 'running' AND lease_owner = \(instance)", logger: logger)
    }

    func lapsedLeases(now: Double) async throws -> [String] {
        let rows = try await client.query(
            "SELECT id FROM chunkrelay_job WHERE state = 'running' AND (lease_until IS NULL OR lease_until < \(now)) ORDER BY queue_order",
            logger: logger)
        var ids: [String] = []
        for try await (id) in rows.decode(String.self) { ids.append(id) }
        return ids
    }

    func renewTransfer(jobId: String, until: Double) async throws {
        try await client.query(
            "UPDATE chunkrelay_job SET claim_until = \(until) WHERE id = \(jobId) AND claim_owner = \(instance)", logger: logger)
    }

    func markWatched(_ jobIds: [String], at time: Double) async throws {
        guard !jobIds.isEmpty else { return }
        try await client.query(
            """
            INSERT INTO chunkrelay_presence (job_id, instance, seen_at)
            SELECT id, \(instance), \(time) FROM chunkrelay_job WHERE id = ANY(\(jobIds))
            ON CONFLICT (job_id, instance) DO UPDATE SET seen_at = excluded.seen_at
            """, logger: logger)
    }

    // MARK: - Rows

    private static func chunk(jobId: String, attempt: Int, index: Int, on connection: PostgresConnection, logger: Logger) async throws -> ChunkRecord? {
        try await chunks(connection.query(
            """
            SELECT job_id, attempt, idx, size, sha256, written FROM chunkrelay_chunk
            WHERE job_id = \(jobId) AND attempt = \(attempt) AND idx = \(index)
            """, logger: logger)).first
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
        for try await (jobId, attempt, idx, size, sha256, written) in rows.decode((String, Int, Int, Int, String, Bool).self) {
            chunks.append(ChunkRecord(jobId: jobId, attempt: attempt, idx: idx, size: size, sha256: sha256, written: written))
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
            delivery: try known(DeliveryMode.self, try r["delivery"].decode(String.self)), chunkSize: try r["chunk_size"].decode(Int.self),
            imageKey: try r["image_key"].decode(String?.self), createdAt: try r["created_at"].decode(Double.self),
            queueOrder: try r["queue_order"].decode(Int64.self)
        )
        job.state = try known(JobState.self, try r["state"].decode(String.self))
        job.attempt = try r["attempt"].decode(Int.self)
        job.uploadToken = try r["upload_token"].decode(String?.self)
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
        job.delivered = try r["delivered"].decode(String.self)
        job.cluster = ClusterColumns(
            claimOwner: try r["claim_owner"].decode(String?.self), claimUntil: try r["claim_until"].decode(Double?.self),
            leaseOwner: try r["lease_owner"].decode(String?.self), leaseUntil: try r["lease_until"].decode(Double?.self),
            watchedAt: nil)
        return job
    }

    /// A state or delivery read back; one this build does not know is an error, never a guess.
    private static func known<T: RawRepresentable>(_ type: T.Type, _ raw: String) throws -> T where T.RawValue == String {
        guard let value = T(rawValue: raw) else {
            throw GatewayError(.internalServerError, .internalError, "the ledger holds '\(raw)', which is not a \(T.self) this build knows")
        }
        return value
    }
}
