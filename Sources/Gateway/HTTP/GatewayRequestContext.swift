import Hummingbird
import NIOCore

/// The gateway's request context: Hummingbird's basic one plus the connection, so a one-shot
/// download can learn what the client's TCP has acknowledged (`Delivery`).
public struct GatewayRequestContext: RequestContext {
    /// Hummingbird's per-request storage.
    public var coreContext: CoreRequestContextStorage
    /// The connection the request came on.
    public let channel: any Channel

    /// Made by the server for each request.
    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }
}
