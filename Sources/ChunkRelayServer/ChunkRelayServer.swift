import FaultInjection
import Foundation
import Gateway
import Hummingbird
import LocalRuntime
import Logging
import ServiceLifecycle
import Synchronization

/// What `chunkrelay serve` runs: the gateway and the local runtime in one process.
public struct ServeConfiguration: Sendable {
    /// The gateway's settings.
    public var gateway = GatewayConfiguration()
    /// The local runtime's settings.
    public var runtime = RuntimeConfiguration()
    /// Folder of functions, one subfolder with a `function.json` each.
    public var functionsDirectory = URL(fileURLWithPath: "functions", isDirectory: true)
    /// `--template`: a SAM or CloudFormation template whose functions run beside the folder's.
    public var template: URL?
    /// `--parameter-overrides`: values for the template's `Parameters`.
    public var parameterOverrides: [String: String] = [:]
    /// `--api-port`: where the template's `Api` and `HttpApi` events are served (0 picks a free port).
    public var apiPort = 3000
    /// `--env-vars`: SAM CLI's environment file, merged over each `function.json`'s `environment`.
    public var environmentFile: URL?
    /// `--watch`: rebuild a function when its sources change and retire its warm environments.
    public var watch = false
    /// `--public-url`: the address functions post chunks to (a load balancer's), instead of this gateway's own.
    public var publicURL: String?
    /// Every function's streamed responses at Lambda's bandwidth (6 MB at full speed, then 2 MB a second).
    public var awsStreamingBandwidth = false
    /// `--inspector-token`: lets clients off this machine use `/inspect` and replay with it; nil: loopback only.
    public var inspectorToken: String?

    /// The defaults `serve` starts with.
    public init() {}
}

/// The gateway, the runtime and their HTTP servers, run together as one `Service`.
public final class ChunkRelayServer: Service, Sendable {
    /// The gateway.
    public let gateway: Gateway
    /// The local runtime.
    public let runtime: LocalRuntime
    private let services: [any Service]
    private let logger: Logger
    private let addresses: ListeningAddresses

    /// The gateway's and the runtime's base URLs, once both listen.
    public func listeningURLs() async -> (gateway: String, runtime: String) {
        await addresses.wait()
    }

    private init(gateway: Gateway, runtime: LocalRuntime, services: [any Service], addresses: ListeningAddresses, logger: Logger) {
        self.addresses = addresses
        self.gateway = gateway
        self.runtime = runtime
        self.services = services
        self.logger = logger
    }

    /// The functions of `configuration`, with the `--env-vars` file merged in.
    public static func registry(_ configuration: ServeConfiguration, logger: Logger) throws -> FunctionRegistry {
        try functions(configuration, logger: logger).registry
    }

    /// The functions of `configuration` and its template's API routes.
    public static func functions(_ configuration: ServeConfiguration, logger: Logger) throws -> (registry: FunctionRegistry, routes: [APIRoute]) {
        var registry = try FunctionRegistry(directory: configuration.functionsDirectory)
        var routes: [APIRoute] = []
        if let file = configuration.template {
            let template = try LambdaTemplate(
                contentsOf: file, parameterOverrides: configuration.parameterOverrides, stateDirectory: configuration.gateway.stateDirectory)
            for line in template.notEmulated { logger.notice("\(file.lastPathComponent): not emulated: \(line)") }
            let architectures = template.functions.compactMap { function in
                function.architectures.map { "\(function.name) \($0.joined(separator: "+"))" }
            }
            if !architectures.isEmpty {
                #if arch(arm64)
                let machine = "arm64"
                #else
                let machine = "x86_64"
                #endif
                logger.notice("\(file.lastPathComponent): Architectures reported, not emulated (functions run on this machine's \(machine)): \(architectures.joined(separator: ", "))")
            }
            let clashes = template.functions.map(\.name).filter { registry.function(named: $0) != nil }
            if !clashes.isEmpty {
                throw RuntimeError(
                    .invalidConfiguration,
                    "\(file.path): \(clashes.joined(separator: ", ")) is also in \(configuration.functionsDirectory.path); a function has one name")
            }
            registry = try FunctionRegistry(Array(registry.functions.values) + template.functions)
            routes = template.routes
        }
        if let file = configuration.environmentFile {
            let merged = registry.merging(try EnvironmentVariablesFile(contentsOf: file))
            for section in merged.unknownSections {
                logger.warning("\(file.path): section \"\(section)\" names no function; its variables are not used")
            }
            registry = merged.registry
        }
        if configuration.awsStreamingBandwidth {
            registry = try FunctionRegistry(registry.functions.values.map { function in
                var paced = function
                paced.awsStreamingBandwidth = true
                return paced
            })
        }
        return (registry, routes)
    }

    /// Builds everything `serve` runs; tests call this too.
    public static func build(_ configuration: ServeConfiguration, logger: Logger) async throws -> ChunkRelayServer {
        let (registry, routes) = try Self.functions(configuration, logger: logger)
        var runtimeConfiguration = configuration.runtime
        if runtimeConfiguration.packageRoot == nil {
            runtimeConfiguration.packageRoot = configuration.functionsDirectory.standardizedFileURL.deletingLastPathComponent()
        }
        if runtimeConfiguration.binDirectories.isEmpty {
            runtimeConfiguration.binDirectories = [RuntimeConfiguration.ownBinDirectory]
        }
        // One injector for both servers: one log of faults, one count per rule.
        runtimeConfiguration.faults = configuration.gateway.faults
        let runtimeHost = runtimeConfiguration.host
        let runtimePort = runtimeConfiguration.port
        let runtime = LocalRuntime(configuration: runtimeConfiguration, registry: registry, logger: logger)
        let gateway = try await Gateway.open(configuration: configuration.gateway, invoker: RuntimeInvoker(runtime: runtime), logger: logger)

        let addresses = ListeningAddresses()
        let gatewayHost = configuration.gateway.host
        let gatewayApp = Application(
            router: gateway.buildRouter { router in
                Inspector(gateway: gateway, runtime: runtime, faults: configuration.gateway.faults).addRoutes(to: router, token: configuration.inspectorToken)
            },
            server: gateway.httpServer(),
            configuration: .init(address: .hostname(gatewayHost, port: configuration.gateway.port), serverName: "chunkrelay"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? configuration.gateway.port
                // Functions run on this machine: a wildcard bind is reached through loopback.
                let host = gatewayHost == "0.0.0.0" || gatewayHost == "::" ? "127.0.0.1" : gatewayHost
                let url = "http://\(host):\(port)"
                // Behind a load balancer, functions post their chunks through it: any instance takes them.
                gateway.setBaseURL(configuration.publicURL ?? url)
                addresses.set(gateway: url)
                logger.notice("gateway listening on \(url)")
            },
            logger: logger
        )
        let runtimeApp = Application(
            router: InvokeAPIRouter.make(runtime: runtime),
            server: configuration.gateway.connections.httpServer(),
            configuration: .init(address: .hostname(runtimeConfiguration.host, port: runtimeConfiguration.port), serverName: "chunkrelay-runtime"),
            onServerRunning: { channel in
                let url = "http://\(runtimeHost):\(channel.localAddress?.port ?? runtimePort)"
                addresses.set(runtime: url)
                logger.notice("local runtime (Lambda Invoke API) listening on \(url); functions: \(registry.functions.keys.sorted().joined(separator: ", "))")
            },
            logger: logger
        )
        // Shut down in reverse: the dispatcher lets running invocations finish (their uploads need the
        // gateway's server and the runtime), then the gateway's server finishes its requests (downloads,
        // event streams end), then the store's pool they used, then the runtime's servers, then the
        // runtime stops the function processes.
        let urlServers = runtime.functionURLServers(
            host: runtimeHost, server: configuration.gateway.connections.httpServer(shapingFaults: configuration.gateway.faults != nil), logger: logger)
            + [runtime.apiServer(routes: routes, host: runtimeHost, port: configuration.apiPort, server: configuration.gateway.connections.httpServer(), logger: logger)]
            .compactMap { $0 }
        // The watcher, last, stops first: no rebuild starts while the rest shuts down.
        let watcher: [any Service] = configuration.watch ? [FunctionWatcher(runtime: runtime, logger: logger)] : []
        let services: [any Service] = [runtime, runtimeApp] + urlServers + gateway.storeServices + [gatewayApp] + gateway.services + watcher
        return ChunkRelayServer(gateway: gateway, runtime: runtime, services: services, addresses: addresses, logger: logger)
    }

    /// Runs everything until graceful shutdown.
    public func run() async throws {
        // A part that fails or ends early stops the rest gracefully, in order, rather than cancelling
        // them: a cancelled server drops connections it accepted but had not begun to serve, and NIO
        // traps on their unfinished writers (swift-nio #2813); the error is still what `run` throws.
        var configuration = ServiceGroupConfiguration(
            services: services.map { .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup) },
            logger: logger)
        // Past this, whatever still runs (a download that will not end) is cancelled.
        configuration.maximumGracefulShutdownDuration = gateway.configuration.shutdownGrace * 2 + .seconds(5)
        let group = ServiceGroup(configuration: configuration)
        try await group.run()
    }
}
