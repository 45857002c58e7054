import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import TestSupport
import Testing

@testable import LocalRuntime

/// A local runtime running real function processes (the `chaos` function this package builds),
/// with its Invoke API on a real socket.
enum RuntimeHarness {
    static func chaos(name: String = "chaos", timeout: Double = 5, concurrency: Int = 2, environment: [String: String] = [:]) -> FunctionConfiguration {
        FunctionConfiguration(
            name: name, swiftProduct: "chaos", timeout: timeout, memorySize: 256, reservedConcurrency: concurrency,
            maximumRetryAttempts: 0, environment: environment
        )
    }

    static func run(
        _ functions: [FunctionConfiguration], configuration: RuntimeConfiguration = RuntimeConfiguration(),
        _ body: @Sendable (LocalRuntime, String) async throws -> Void
    ) async throws {
        var configuration = configuration
        configuration.port = 0
        configuration.binDirectories = [RuntimeConfiguration.ownBinDirectory]
        configuration.shutdownGrace = .milliseconds(500)
        var logger = Logger(label: "runtime-test")
        logger.logLevel = .warning
        let runtime = LocalRuntime(configuration: configuration, registry: try FunctionRegistry(functions), logger: logger)
        try await withLiveApplication(logger: logger) { onServerRunning in
            var app = Application(
                router: InvokeAPIRouter.make(runtime: runtime), configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                onServerRunning: onServerRunning, logger: logger)
            app.addServices(runtime)
            return app
        } _: { port in
            try await body(runtime, "http://127.0.0.1:\(port)")
        }
    }
}

extension InvocationResult {
    var text: String { String(buffer: payload) }

    /// The payload as chaos's echo object; a payload that is not one fails the test (two unparseable
    /// payloads must not compare equal as two empty dictionaries).
    var json: [String: String] {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(payload.readableBytesView))) as? [String: String] else {
            Issue.record("the invocation's payload is not a JSON object of strings: \(text.prefix(300))")
            return [:]
        }
        return object
    }
}
