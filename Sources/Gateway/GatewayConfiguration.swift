import FaultInjection
import Foundation
import RelayProtocol

/// How the gateway runs; filled once from flags, with defaults for everything.
public struct GatewayConfiguration: Sendable {
    /// Listen host.
    public var host: String = "127.0.0.1"
    /// Listen port; 0 picks a free one.
    public var port: Int = 8080
    /// Where the SQLite ledger, spool files and images live; created if missing.
    public var stateDirectory: URL = URL(fileURLWithPath: ".chunkrelay", isDirectory: true)
    /// Chunk size cap handed to functions (default 1 MiB, at most 6 MiB).
    public var chunkSize: Int = RelayLimits.defaultChunkSize
    /// Function invocations running at once; more jobs wait in FIFO order.
    public var maxConcurrency: Int = 4
    /// How long a ready image waits for its one retrieval.
    public var imageTTL: Duration = .seconds(600)
    /// How often the janitor looks for expired images, finished streams and abandoned stream jobs.
    public var janitorInterval: Duration = .seconds(5)
    /// Several instances: how long a running job stays an instance's without a renewal (renewed every
    /// janitor pass; a killed instance's jobs are taken over after it); a transfer claim lasts two.
    /// Nil: six janitor passes, at least 10 s.
    public var lease: Duration? = nil
    /// A `:` comment on every open event stream this often, so proxies keep idle connections.
    public var heartbeatInterval: Duration = .seconds(15)
    /// The `retry:` (milliseconds) event streams tell clients to wait before reconnecting.
    public var reconnectMilliseconds: Int = 2000
    /// How long a finished stream's spool stays for clients that resume; afterwards a resume gets 410.
    public var streamGrace: Duration = .seconds(60)
    /// A stream-mode job whose client has been gone this long (queued or running) is cancelled.
    public var clientGrace: Duration = .seconds(30)
    /// Folder of the page served at `/` (`samples/browser`); nothing is served there when absent.
    public var webRoot: URL? = URL(fileURLWithPath: "samples/browser", isDirectory: true)

    /// How long a finished job's row stays in the ledger (a consumed key answers 410 meanwhile, 404 after).
    public var finishedRetention: Duration = .seconds(24 * 3600)
    /// Jobs waiting in the queue at most; a job beyond it is refused with `429` and `Retry-After`.
    public var maxQueueLength: Int = 1000
    /// At graceful shutdown, how long running invocations may go on to finish their uploads; the ones
    /// still running then are stopped and put back at the front of the queue.
    public var shutdownGrace: Duration = .seconds(10)
    /// Connection limits of the gateway's HTTP server.
    public var connections = ConnectionLimits()
    /// With the SQLite store: new jobs and chunk uploads are refused (`507`) while the state folder's
    /// file system has less free space than this, so the ledger can always record what frees space.
    public var minFreeSpace: Int64 = 64 << 20
    /// With the SQLite store: a file of this size kept in the state folder and deleted the moment a
    /// write hits a full disk, so the failures and deletions that free space can still commit.
    public var storageReserve: Int64 = 4 << 20
    /// Where jobs, the queue and the chunk ledger live.
    public var store: Store = .sqlite
    /// Faults on demand (`serve --faults`, `--fault-rules`); nil: `X-ChunkRelay-Fault` means nothing here.
    public var faults: FaultInjector?

    /// The ledger's home: SQLite in the state directory (one instance), or a PostgreSQL database.
    public enum Store: Sendable, Hashable {
        /// `ledger.sqlite` in the state directory.
        case sqlite
        /// A PostgreSQL database, `postgres://USER@HOST:PORT/DATABASE`.
        case postgres(String)
    }

    /// The defaults.
    public init() {}

    /// Checks the values; the CLI reports the message.
    public func validate() throws(GatewayError) {
        guard (RelayLimits.minimumChunkSize...RelayLimits.maximumChunkSize).contains(chunkSize) else {
            throw GatewayError(.badRequest, .invalidConfiguration, "chunk size must be \(RelayLimits.minimumChunkSize)...\(RelayLimits.maximumChunkSize) bytes")
        }
        guard maxConcurrency >= 1 else { throw GatewayError(.badRequest, .invalidConfiguration, "max concurrency must be at least 1") }
        guard maxQueueLength >= 1 else { throw GatewayError(.badRequest, .invalidConfiguration, "max queue length must be at least 1") }
        guard connections.maxConnections >= 1 else { throw GatewayError(.badRequest, .invalidConfiguration, "max connections must be at least 1") }
        guard minFreeSpace >= 0, storageReserve >= 0 else {
            throw GatewayError(.badRequest, .invalidConfiguration, "--min-free-space and the storage reserve cannot be negative")
        }
        guard imageTTL > .zero else { throw GatewayError(.badRequest, .invalidConfiguration, "image TTL must be positive") }
    }
}
