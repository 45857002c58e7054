import Foundation
import HTTPTypes
import HummingbirdCore
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import RelayProtocol
import Synchronization

/// Limits that keep one server's connections from swamping it.
public struct ConnectionLimits: Sendable {
    /// Open connections at most; a request on one beyond it gets `503` with `Retry-After` and the connection closes.
    public var maxConnections: Int = 1024
    /// A connection with no request in progress for this long is closed (this also cuts off a client
    /// that trickles a request's headers: they count only once complete).
    public var idleTimeout: Duration = .seconds(30)
    /// While the server waits for more of a request body, this long without a byte closes the connection.
    public var bodyReadTimeout: Duration = .seconds(30)
    /// Largest request head (request line and all header fields); beyond it `431`.
    public var maxHeaderBytes: Int = 16 << 10
    /// Most header fields in one request; beyond it `431`.
    public var maxHeaderFields: Int = 100

    /// The defaults.
    public init() {}

    /// A Hummingbird HTTP/1.1 server with these limits; each server it builds counts its own connections.
    /// With `shapingFaults`, each connection can carry out the body faults its requests arm (`FaultShaper`).
    public func httpServer(shapingFaults: Bool = false) -> HTTPServerBuilder {
        httpServer(counting: ConnectionLimiter(limit: maxConnections), shapingFaults: shapingFaults)
    }

    /// The same, counting connections with `limiter` (whose count the gateway reports).
    func httpServer(counting limiter: ConnectionLimiter, shapingFaults: Bool) -> HTTPServerBuilder {
        let bodyReadTimeout = TimeAmount(bodyReadTimeout)
        return .http1(configuration: HTTP1Channel.Configuration(
            additionalChannelHandlers: [ConnectionGuard(limiter: limiter, bodyReadTimeout: bodyReadTimeout, shapingFaults: shapingFaults)],
            idleTimeout: TimeAmount(idleTimeout),
            httpDecoderConfiguration: .init(maxHeaderFieldSize: maxHeaderBytes, maxHeaderListSize: maxHeaderBytes, maxHeaderFieldCount: maxHeaderFields)
        ))
    }
}
