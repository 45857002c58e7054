import ChunkRelayServer
import Foundation
import Logging
import RelayClient
import ServiceLifecycle

/// A running ChunkRelay inside a test: the gateway and the local runtime in-process, on free ports.
public struct ChunkRelayInstance: Sendable {
    /// The gateway's base URL (`http://127.0.0.1:PORT`).
    public let gatewayURL: String
    /// The local runtime's Invoke API (for an AWS SDK's `endpoint_url`).
    public let runtimeURL: String
    /// A client of the gateway.
    public let client: RelayClient
    let server: ChunkRelayServer

    /// The API port's base URL (a template's `Api` and `HttpApi` events), once it listens.
    public var apiURL: String? {
        server.runtime.apiURL
    }

    /// A function's URL, when it has one.
    public func functionURL(of function: String) -> String? {
        server.runtime.functionURL(of: function)
    }
}

/// Runs a ChunkRelay (gateway and local runtime, as `chunkrelay serve` wires them) for the length of
/// `body`, on free loopback ports with its state in a fresh temporary folder, and always tears it down:
/// function processes stopped, servers closed, the folder removed, however `body` ends.
///
/// ```swift
/// @Test func theMapIsWhatTheFixtureSays() async throws {
///     try await withChunkRelay(functions: URL(fileURLWithPath: "functions")) { relay in
///         let file = FileManager.default.temporaryDirectory.appendingPathComponent("map.png")
///         let image = try await relay.client.generate(CreateJobRequest(function: "map-render"), to: file)
///         #expect(image.sha256 == "30f800d1…")
///     }
/// }
/// ```
public func withChunkRelay<T: Sendable>(
    functions: URL, configure: (inout ServeConfiguration) -> Void = { _ in }, logLevel: Logger.Level = .warning,
    _ body: @Sendable (ChunkRelayInstance) async throws -> T
) async throws -> T {
    let state = FileManager.default.temporaryDirectory.appendingPathComponent("chunkrelay-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: state) }
    var configuration = ServeConfiguration()
    configuration.gateway.port = 0
    configuration.gateway.stateDirectory = state
    configuration.gateway.webRoot = nil
    configuration.runtime.port = 0
    configuration.apiPort = 0
    configuration.runtime.shutdownGrace = .milliseconds(500)
    configuration.gateway.shutdownGrace = .milliseconds(500)
    configuration.functionsDirectory = functions
    // Swift functions are built from the package the functions folder sits in, when not built yet.
    configuration.runtime.packageRoot = functions.standardizedFileURL.deletingLastPathComponent()
    configure(&configuration)
    var logger = Logger(label: "chunkrelay-testing")
    logger.logLevel = logLevel
    let server = try await ChunkRelayServer.build(configuration, logger: logger)
    let group = ServiceGroup(configuration: .init(services: [server], logger: logger))
    return try await withThrowingTaskGroup(of: T?.self) { tasks in
        tasks.addTask {
            try await group.run()
            return nil
        }
        let urls = await server.listeningURLs()
        let instance = ChunkRelayInstance(gatewayURL: urls.gateway, runtimeURL: urls.runtime, client: RelayClient(baseURL: urls.gateway), server: server)
        let result: T
        do {
            result = try await body(instance)
        } catch {
            await group.triggerGracefulShutdown()
            try? await tasks.waitForAll()
            throw error
        }
        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
        return result
    }
}
