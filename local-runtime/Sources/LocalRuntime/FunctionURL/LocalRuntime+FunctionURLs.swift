import Hummingbird
import HummingbirdCore
import Logging
import ServiceLifecycle

extension LocalRuntime {
    /// One HTTP server per function that has a `url`, each on its own port (a Function URL owns its
    /// whole path space, as `https://<url-id>.lambda-url.<region>.on.aws/` does); run them as services.
    public func functionURLServers(host: String, server: HTTPServerBuilder, logger: Logger) -> [any Service] {
        registry.functions.values.sorted { $0.name < $1.name }.compactMap { function -> (any Service)? in
            guard let responder = FunctionURLResponder(runtime: self, function: function), let config = function.url else { return nil }
            if config.authType == "AWS_IAM" {
                logger.warning("\(function.name): url.authType AWS_IAM is not enforced locally (requests are not signed here)")
            }
            let name = function.name
            return Application(
                responder: responder, server: server,
                configuration: .init(address: .hostname(host, port: config.port), serverName: "chunkrelay-function-url"),
                onServerRunning: { [self] channel in
                    let url = "http://\(host):\(channel.localAddress?.port ?? config.port)/"
                    functionURLs.withLock { $0[name] = url }
                    logger.notice("function URL of \(name) (\(config.invokeMode.rawValue)): \(url)")
                },
                logger: logger
            )
        }
    }

    /// The Function URL of `name`, once its server listens.
    public func functionURL(of name: String) -> String? {
        functionURLs.withLock { $0[name] }
    }
}
