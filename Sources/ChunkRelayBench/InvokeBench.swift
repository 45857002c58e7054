import ArgumentParser
import AsyncHTTPClient
import ChunkRelayServer
import Foundation
import Hummingbird
import LocalRuntime
import Logging
import NIOCore
import RelayProtocol
import ServiceLifecycle

/// Warm invocation overhead and cold start of a Swift function (the `chaos` function's echo), medians
/// of many runs, in-process and through the Invoke API over HTTP.
struct InvokeBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "invoke", abstract: "Warm invocation overhead and cold start of a Swift function.")

    @Option(help: "Warm invocations to time.") var warm = 500
    @Option(help: "Cold starts to time.") var cold = 20
    @Option(help: "Folder of functions.") var functions = "functions"

    func run() async throws {
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let registry = try FunctionRegistry(directory: URL(fileURLWithPath: functions, isDirectory: true))
        guard registry.function(named: "chaos") != nil else { throw ExitMessage("no chaos function in \(functions)") }
        var configuration = RuntimeConfiguration()
        configuration.port = 0
        configuration.binDirectories = [RuntimeConfiguration.ownBinDirectory]
        configuration.packageRoot = URL(fileURLWithPath: functions, isDirectory: true).standardizedFileURL.deletingLastPathComponent()
        configuration.shutdownGrace = .milliseconds(200)
        let echo = ByteBuffer(string: #"{"mode":"echo"}"#)

        // Cold: a new runtime each time, so every invocation starts a new process.
        var coldTotals: [Duration] = []
        var coldInits: [Duration] = []
        for _ in 0..<cold {
            try await withRuntime(configuration, registry, logger) { runtime, _ in
                let started = ContinuousClock.now
                let result = try await runtime.invoke("chaos", payload: echo)
                guard result.succeeded else { throw ExitMessage("cold invocation failed: \(result.errorMessage ?? "")") }
                coldTotals.append(ContinuousClock.now - started)
                coldInits.append(result.initDuration ?? .zero)
            }
        }
        // Warm: one environment, invoked again and again, in process and over HTTP.
        var warmInProcess: [Duration] = []
        var warmHTTP: [Duration] = []
        try await withRuntime(configuration, registry, logger) { runtime, url in
            _ = try await runtime.invoke("chaos", payload: echo)
            for _ in 0..<warm {
                let started = ContinuousClock.now
                _ = try await runtime.invoke("chaos", payload: echo)
                warmInProcess.append(ContinuousClock.now - started)
            }
            var request = HTTPClientRequest(url: "\(url)/2015-03-31/functions/chaos/invocations")
            request.method = .POST
            request.body = .bytes(echo)
            for _ in 0..<warm {
                let started = ContinuousClock.now
                let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
                _ = try await response.body.collect(upTo: 1 << 20)
                warmHTTP.append(ContinuousClock.now - started)
            }
        }
        let rows: [(String, [Duration], Duration?)] = [
            ("cold start, invoke to response (in process)", coldTotals, .milliseconds(100)),
            ("cold start, init duration (spawn to first next)", coldInits, nil),
            ("warm invocation (in process)", warmInProcess, .milliseconds(2)),
            ("warm invocation (Invoke API over HTTP)", warmHTTP, nil),
        ]
        print("| measure | runs | median | p90 | target | result |")
        print("|---|---|---|---|---|---|")
        var failed = false
        for (name, samples, target) in rows {
            let sorted = samples.sorted()
            let median = sorted[sorted.count / 2]
            let p90 = sorted[min(sorted.count - 1, sorted.count * 9 / 10)]
            let verdict = target.map { median < $0 ? "PASS" : "FAIL" } ?? ""
            if verdict == "FAIL" { failed = true }
            print("| \(name) | \(samples.count) | \(Self.ms(median)) | \(Self.ms(p90)) | \(target.map { "< " + Self.ms($0) } ?? "") | \(verdict) |")
        }
        if failed { throw ExitCode(1) }
    }

    private func withRuntime(
        _ configuration: RuntimeConfiguration, _ registry: FunctionRegistry, _ logger: Logger,
        _ body: (LocalRuntime, String) async throws -> Void
    ) async throws {
        let runtime = LocalRuntime(configuration: configuration, registry: registry, logger: logger)
        let addresses = ListeningAddresses()
        let app = Application(
            router: InvokeAPIRouter.make(runtime: runtime),
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { addresses.set(gateway: "-", runtime: "http://127.0.0.1:\($0.localAddress?.port ?? 0)") },
            logger: logger
        )
        let group = ServiceGroup(configuration: .init(services: [runtime, app], logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let url = await addresses.wait().runtime
            do {
                try await body(runtime, url)
            } catch {
                await group.triggerGracefulShutdown()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    static func ms(_ duration: Duration) -> String {
        String(format: "%.2f ms", duration.inSeconds * 1000)
    }
}
