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
    /// How often the janitor looks for expired images.
    public var janitorInterval: Duration = .seconds(5)

    /// The defaults.
    public init() {}

    /// Checks the values; the CLI reports the message.
    public func validate() throws(GatewayError) {
        guard (RelayLimits.minimumChunkSize...RelayLimits.maximumChunkSize).contains(chunkSize) else {
            throw GatewayError(.badRequest, "invalid_configuration", "chunk size must be \(RelayLimits.minimumChunkSize)...\(RelayLimits.maximumChunkSize) bytes")
        }
        guard maxConcurrency >= 1 else { throw GatewayError(.badRequest, "invalid_configuration", "max concurrency must be at least 1") }
        guard imageTTL > .zero else { throw GatewayError(.badRequest, "invalid_configuration", "image TTL must be positive") }
    }
}
