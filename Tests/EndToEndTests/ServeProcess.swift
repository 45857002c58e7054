import AsyncHTTPClient
import Foundation
import RelayClient
import TestSupport

@testable import ChunkRelayBench
@testable import chunkrelay

/// The real `chunkrelay serve` as a child process, to be killed with `SIGKILL` and started again on
/// the same state directory and ports.
struct ServeProcess: Sendable {
    let gateway: String
    /// The local runtime's Invoke API.
    let runtime: String
    let child: ChildProcess
    var log: URL { child.log }

    /// The `chunkrelay` executable beside the test bundle.
    static var binary: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("chunkrelay")
    }

    /// Starts `serve` and waits until it answers `/healthz`; port 0 picks free ports (read from its log).
    static func start(
        stateDirectory: URL, port: Int = 0, runtimePort: Int = 0, functions: URL = repositoryRoot.appendingPathComponent("functions"),
        arguments: [String] = []
    ) async throws -> ServeProcess {
        let log = stateDirectory.deletingLastPathComponent().appendingPathComponent("\(stateDirectory.lastPathComponent)-\(UUID().uuidString.prefix(8)).log")
        let child = try await ChildProcess.start(
            [
                binary.path, "serve", "--port", String(port), "--runtime-port", String(runtimePort), "--state-dir", stateDirectory.path,
                "--log-level", "info", "--functions", functions.path,
            ] + arguments,
            directory: repositoryRoot, log: log
        )
        do {
            let url = try await child.announcedURL(after: "gateway listening on ", within: .seconds(60))
            let runtime = try await child.announcedURL(after: "local runtime (Lambda Invoke API) listening on ", within: .seconds(60))
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline {
                if (try? await RelayClient(baseURL: url).health()) == true { return ServeProcess(gateway: url, runtime: runtime, child: child) }
                guard child.isRunning else { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            throw TestFailure("serve did not answer /healthz: \(child.output)")
        } catch {
            child.signal(SIGKILL)
            await child.waitForExit()
            throw error
        }
    }

    var gatewayPort: Int { Int(gateway.split(separator: ":").last ?? "0") ?? 0 }

    /// `kill -9`: no shutdown code runs.
    func kill9() async {
        child.signal(SIGKILL)
        await child.waitForExit()
    }

    /// `SIGTERM`, then waits for it to exit; returns its exit status.
    func terminate() async -> Int32 {
        child.signal(SIGTERM)
        return await child.waitForExit()
    }
}

/// Runs `body` with a fresh folder for one test's state and files, removed afterwards.
func withScratchDirectory(_ prefix: String, _ body: (URL) async throws -> Void) async throws {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: root) }
    try await body(root)
}

extension RelayClient {
    func health() async throws -> Bool {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: "\(baseURL)/healthz"), timeout: .seconds(2))
        return response.status == .ok
    }
}
