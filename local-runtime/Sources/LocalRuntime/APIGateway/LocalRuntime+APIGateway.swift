import Hummingbird
import HummingbirdCore
import Logging
import ServiceLifecycle

extension LocalRuntime {
    /// The server of a template's `Api` and `HttpApi` events on `port` (SAM's `start-api` uses 3000);
    /// nil when there are none. Run it as a service.
    public func apiServer(routes: [APIRoute], host: String, port: Int, server: HTTPServerBuilder, logger: Logger) -> (any Service)? {
        guard !routes.isEmpty else { return nil }
        let responder = APIGatewayResponder(runtime: self, table: APIRouteTable(routes: routes), logger: logger)
        return Application(
            responder: responder, server: server,
            configuration: .init(address: .hostname(host, port: port), serverName: "chunkrelay-api"),
            onServerRunning: { [self] channel in
                let url = "http://\(host):\(channel.localAddress?.port ?? port)"
                apiAddress.withLock { $0 = url }
                let lines = routes.map { "\($0.method) \($0.path) -> \($0.function) (\($0.kind.rawValue), payload \($0.payloadFormat))" }
                logger.notice("API (as sam local start-api) listening on \(url): \(lines.joined(separator: "; "))")
            },
            logger: logger
        )
    }

    /// The API port's base URL, once it listens.
    public var apiURL: String? {
        apiAddress.withLock { $0 }
    }
}
