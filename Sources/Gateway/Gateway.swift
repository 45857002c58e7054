import Foundation
import Logging
import RelayProtocol
import ServiceLifecycle
import Synchronization

/// The gateway: the job API, chunk ingest, the ledger and spool, the admission queue and delivery.
///
/// Build it with `Gateway.open(...)`, serve `buildRouter()`, and run `services` (the dispatcher and
/// the janitor) beside the HTTP server.
public final class Gateway: Sendable {
    /// The configuration it runs with.
    public let configuration: GatewayConfiguration
    /// Every transition of a job goes through it.
    let lifecycle: JobLifecycle
    let invoker: any Invoker
    let logger: Logger
    let admission: AdmissionQueue
    let janitor: Janitor
    private let baseURL = Latch<String>()
    /// Set when graceful shutdown begins: new jobs are refused while running ones finish.
    let draining = Atomic<Bool>(false)
    /// The gateway server's open connections.
    let connections: ConnectionLimiter
    /// With PostgreSQL: the link that carries feed notices between instances.
    let bridge: PostgresFeedBridge?

    /// `cluster`: the PostgreSQL store when instances may share it (it is the ledger and the coordination).
    private init(
        configuration: GatewayConfiguration, store: any JobLedger, cluster: PostgresJobStore? = nil, spool: any ChunkStorage, invoker: any Invoker,
        logger: Logger
    ) {
        self.configuration = configuration
        self.invoker = invoker
        self.logger = logger
        let admission = AdmissionQueue(logger: logger)
        self.admission = admission
        let policy = JobLifecycle.Policy(
            clientGrace: configuration.clientGrace.inSeconds, finishedRetention: configuration.finishedRetention.inSeconds,
            // A reader another instance saw within a client grace (and the janitor pass that records it) still reads.
            presenceWindow: configuration.clientGrace.inSeconds + 2 * configuration.janitorInterval.inSeconds,
            maxConcurrency: configuration.maxConcurrency)
        // PostgreSQL keeps the bytes in the database: only its refusals count, not this disk's space.
        let storage = StorageGuard(
            stateDirectory: configuration.stateDirectory, minFreeSpace: cluster == nil ? configuration.minFreeSpace : nil,
            reserveBytes: configuration.storageReserve, logger: logger)
        if let postgres = cluster {
            // Several instances may share the store: what one notices, the others hear, and a transfer
            // dropped before its body ran is ended in the ledger by the bridge.
            let (notices, outbox) = AsyncStream.makeStream(of: FeedNotice.self)
            let (dropped, droppedOutbox) = AsyncStream.makeStream(of: String.self)
            let lifecycle = JobLifecycle(
                store: store, spool: spool, feed: JobFeed(outbox: outbox), admission: admission, storage: storage, coordination: postgres,
                droppedTransfers: droppedOutbox, policy: policy, logger: logger)
            self.lifecycle = lifecycle
            bridge = PostgresFeedBridge(
                notices: notices, droppedTransfers: dropped, store: postgres, lifecycle: lifecycle, admission: admission, logger: logger)
        } else {
            bridge = nil
            self.lifecycle = JobLifecycle(
                store: store, spool: spool, feed: JobFeed(), admission: admission, storage: storage, policy: policy, logger: logger)
        }
        self.janitor = Janitor(interval: configuration.janitorInterval)
        self.connections = ConnectionLimiter(limit: configuration.connections.maxConnections)
    }

    /// Opens the state directory (created if missing, owner-only), the ledger and the spool, and puts
    /// jobs that were running when the last process died back at the front of the queue.
    public static func open(configuration: GatewayConfiguration, invoker: any Invoker, logger: Logger) async throws -> Gateway {
        try configuration.validate()
        try FileManager.default.createDirectory(at: configuration.stateDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        switch configuration.store {
        case .sqlite:
            let spool = Spool(stateDirectory: configuration.stateDirectory)
            try await spool.prepare()
            let store = try SQLiteJobStore(path: configuration.stateDirectory.appendingPathComponent("ledger.sqlite").path)
            let gateway = Gateway(configuration: configuration, store: store, spool: spool, invoker: invoker, logger: logger)
            // The reserve first: what follows may need it.
            await gateway.lifecycle.storage.refresh()
            let requeued = try await gateway.lifecycle.returnRunningToQueue()
            if requeued > 0 { logger.notice("recovered \(requeued) running job(s) to the front of the queue") }
            try await gateway.removeOrphanedFiles(in: spool)
            return gateway
        case .postgres(let url):
            // The pool runs with the gateway's services; what opening needs is done on a connection of its own.
            // Bytes of attempts that will not go on are swept by the janitor (`sweep`), and the running jobs
            // of an instance that is gone are taken over at its first pass, once their leases have run out.
            let lease = configuration.lease?.inSeconds ?? max(configuration.janitorInterval.inSeconds * 6, 10)
            let store = try await PostgresJobStore.open(url: url, instance: RandomToken.make(), leaseSeconds: lease, logger: logger)
            logger.notice("jobs, queue, chunk ledger and chunk bytes in PostgreSQL (\(PostgresURL.redacted(url)))")
            let storage = PostgresChunkStorage(client: store.client, logger: logger)
            return Gateway(configuration: configuration, store: store, cluster: store, spool: storage, invoker: invoker, logger: logger)
        }
    }

    /// After a crash, files the ledger no longer stands behind: spool files of attempts that will not
    /// go on (the requeued jobs start a new attempt), and images of jobs that are not `ready` (a crash
    /// between recording a retrieval and deleting its file, or between writing an image and recording it).
    /// A finished stream keeps its spool for clients that resume.
    func removeOrphanedFiles(in spool: Spool) async throws {
        var removed = 0
        let store = lifecycle.store
        for file in spool.files() {
            let job = try await store.job(id: file.jobId)
            let keep: Bool
            if let attempt = file.attempt {
                keep = job.map { $0.attempt == attempt && $0.state == .done && $0.delivery == .stream && $0.expiresAt != nil } ?? false
            } else {
                keep = job?.state == .ready
            }
            if !keep {
                await spool.remove(file.path)
                removed += 1
            }
        }
        if removed > 0 { logger.notice("removed \(removed) file(s) of interrupted attempts and finished jobs") }
    }

    /// The store's long-lived parts (PostgreSQL's pool): in a service group before the HTTP server.
    public var storeServices: [any Service] {
        // A service group stops services in reverse order: the pool stops after the server, whose last
        // requests (a download, an event stream's end) still read and write the ledger.
        lifecycle.store.services
    }

    /// The long-lived parts to run beside the HTTP server, after it in a service group: the
    /// dispatcher, the janitor, the heartbeats and (PostgreSQL) the link to the other instances.
    public var services: [any Service] {
        // Stopped in reverse order: the dispatcher first (it lets running invocations finish, and their
        // uploads need the server), then the janitor and the heartbeats, then the server.
        (bridge.map { [$0] } ?? []) + [
            JobFeed.HeartbeatRunner(feed: lifecycle.feed, interval: configuration.heartbeatInterval), Janitor.Runner(gateway: self),
            AdmissionQueue.Runner(gateway: self),
        ]
    }

    /// Tells the gateway where it is reachable (functions post chunks there); dispatching waits for it.
    public func setBaseURL(_ url: String) {
        baseURL.set(url)
    }

    /// The base URL once `setBaseURL` was called; nil if the waiting task is cancelled first.
    func waitForBaseURL() async -> String? {
        await baseURL.wait()
    }

    /// The JSON status of a job.
    func status(of job: JobRecord) async throws -> JobStatus {
        let state = job.state
        var chunks = job.totalChunks ?? 0
        var bytes = job.totalBytes ?? 0
        if state == .running {
            chunks = job.storedChunks
            bytes = job.storedBytes
        }
        let error = job.errorCode.map { JobError(code: $0, message: job.errorMessage ?? "") }
        return JobStatus(
            id: job.id, function: job.function, delivery: job.delivery, state: state,
            position: state == .queued ? try await lifecycle.store.position(of: job) : nil,
            chunks: chunks, bytes: bytes, sha256: job.sha256, contentType: job.contentType, attempts: job.attempt,
            error: error, events: "/v1/jobs/\(job.id)/events", image: job.imageKey.map { "/v1/images/\($0)" }
        )
    }
}
