import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import TestSupport
import Testing

@testable import ChunkRelayBench
@testable import chunkrelay
import ChunkRelayServer
import ChunkRelayTesting

/// Every end-to-end suite runs one test at a time: each starts servers and function processes, and
/// on two cores several at once would make timings, not behaviour, decide the results.
@Suite(.serialized) enum EndToEnd {}


/// Runs the real `chunkrelay serve` wiring in-process on free ports, with real function processes:
/// ChunkRelayTesting's `withChunkRelay`, with this repository's functions and page.
func withChunkRelay(
    chunkSize: Int = 1 << 20, maxConcurrency: Int = 4, configure: (inout ServeConfiguration) -> Void = { _ in },
    _ body: @Sendable (_ gateway: String, _ runtime: String) async throws -> Void
) async throws {
    try await ChunkRelayTesting.withChunkRelay(functions: repositoryRoot.appendingPathComponent("functions"), configure: { configuration in
        configuration.gateway.chunkSize = chunkSize
        configuration.gateway.maxConcurrency = maxConcurrency
        configuration.gateway.webRoot = repositoryRoot.appendingPathComponent("samples/browser")
        configure(&configuration)
    }) { relay in
        try await body(relay.gatewayURL, relay.runtimeURL)
    }
}

/// CI (`CI=true`) installs every external peer the tests use; elsewhere a missing one skips its check.
let runningInCI = ProcessInfo.processInfo.environment["CI"] == "true"

/// A Python interpreter that can import `module` (`CHUNKRELAY_PYTHON`, then `.venv-ci`, then `python3`).
/// Asked with swift-subprocess, so the probe never holds a thread of the concurrency pool.
func pythonInterpreter(with module: String) async -> String? {
    let candidates: [String?] = [ProcessInfo.processInfo.environment["CHUNKRELAY_PYTHON"], repositoryRoot.appendingPathComponent(".venv-ci/bin/python").path, "python3"]
    for candidate in candidates.compactMap({ $0 }) {
        if (try? await ChildProcess.run([candidate, "-c", "import \(module)"]))?.status == 0 { return candidate }
    }
    return nil
}

/// The first of `names` found as an executable in `PATH` (what `which` does, without a process).
func executableInPath(_ names: [String]) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    for name in names {
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
    }
    return nil
}

/// Pillow, the decoder the issue names, when this machine has it (CI installs it in a virtual environment).
enum Pillow {
    static func python() async -> String? { await pythonInterpreter(with: "PIL") }

    /// Decodes the PNG fully and returns its size as "WxH mode".
    static func describe(_ file: URL) async throws -> String {
        guard let python = await python() else { throw TestFailure("Pillow is not installed (set CHUNKRELAY_PYTHON or run .ci/run)") }
        let script = "import sys; from PIL import Image; im = Image.open(sys.argv[1]); im.verify(); im = Image.open(sys.argv[1]); im.load(); print(f'{im.size[0]}x{im.size[1]} {im.mode}')"
        let result = try await run([python, "-c", script, file.path])
        guard result.status == 0 else { throw TestFailure("Pillow rejected \(file.lastPathComponent): \(result.output)") }
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}


/// Runs a command to completion (swift-subprocess: no thread of the concurrency pool is held while it
/// runs) and returns its exit status and combined output.
func run(_ arguments: [String]) async throws -> (status: Int32, output: String) {
    try await ChildProcess.run(arguments)
}
