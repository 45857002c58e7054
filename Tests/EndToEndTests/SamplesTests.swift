import Foundation
import RelayClient
import RelayProtocol
import TestSupport
import Testing

@testable import ChunkRelayBench
@testable import chunkrelay

extension EndToEnd {
    /// The samples in `samples/`, run as their READMEs say, against a live server: each writes a
    /// verified image, and they all write the same bytes for the same parameters.
    @Suite(.timeLimit(.minutes(10))) struct SamplesTests {
        /// map-render 1000×600, seed 42 (functions/map-render/fixtures/wide-seed-42.json).
        static let wide = (args: ["width=1000", "height=600", "seed=42"], bytes: 601_454, sha256: "5acb74bc85ac32229e4e9249b8505dd83d463341dd0ea708a8a50070ca3c932c")

        static func python() async -> String? { await pythonInterpreter(with: "httpx_sse") }

        @Test func theShellSampleWritesAVerifiedImageWithCurlOnly() async throws {
            try await withChunkRelay { gateway, _ in
                try await withScratchDirectory("sample-shell") { root in
                    let out = root.appendingPathComponent("map.png")
                    let script = repositoryRoot.appendingPathComponent("samples/shell/generate.sh").path
                    let result = try await run(["bash", script, gateway, out.path] + Self.wide.args)
                    #expect(result.status == 0, "\(result.output)")
                    #expect(result.output.contains("verified"), "\(result.output)")
                    let written = try Data(contentsOf: out)
                    #expect(written.count == Self.wide.bytes && ContentDigest(of: written).hex == Self.wide.sha256)

                    // A job that fails: a non-zero exit, the reason, and no file.
                    let failing = root.appendingPathComponent("none.png")
                    let failed = try await ChildProcess.run(["bash", script, gateway, failing.path, "mode=error"], environment: ["FUNCTION": "chaos", "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"])
                    #expect(failed.status != 0, "\(failed.output)")
                    #expect(failed.output.contains("failed"), "\(failed.output)")
                    #expect(!FileManager.default.fileExists(atPath: failing.path))
                }
            }
        }

        @Test func theSwiftSampleRendersAGridOfTilesAtOnceInBothModes() async throws {
            try await withChunkRelay { gateway, _ in
                try await withScratchDirectory("sample-swift") { root in
                    let tool = ServeProcess.binary.deletingLastPathComponent().appendingPathComponent("map-tiles").path
                    let result = try await run([tool, gateway, root.path, "256"])
                    #expect(result.status == 0, "\(result.output)")
                    #expect(result.output.contains("9 tiles verified"), "\(result.output)")
                    #expect(result.output.contains(" stream ") && result.output.contains(" retrieve "))
                    for row in 0..<3 {
                        for column in 0..<3 {
                            let file = root.appendingPathComponent("tile-\(row)-\(column).png")
                            let digest = ContentDigest(of: try Data(contentsOf: file)).hex
                            #expect(result.output.contains("tile-\(row)-\(column).png") && result.output.contains(digest), "tile \(row),\(column)")
                        }
                    }
                    // The first tile (stream mode, seed 100) is what a retrieve job of the same map gives.
                    let check = root.appendingPathComponent("check.png")
                    let retrieved = try await RelayClient(baseURL: gateway).generate(
                        CreateJobRequest(function: "map-render", params: ["width": .number(256), "height": .number(256), "seed": .number(100)]), to: check
                    )
                    #expect(retrieved.sha256 == ContentDigest(of: try Data(contentsOf: root.appendingPathComponent("tile-0-0.png"))).hex)
                }
            }
        }

        @Test(.enabled("needs httpx and httpx-sse (CI installs them)") { await python() != nil || runningInCI })
        func thePythonSampleWritesTheSameBytesInBothModes() async throws {
            let python = try #require(await Self.python(), "httpx-sse is not installed")
            try await withChunkRelay { gateway, _ in
                try await withScratchDirectory("sample-python") { root in
                    let script = repositoryRoot.appendingPathComponent("samples/python/generate.py").path
                    for delivery in ["stream", "retrieve"] {
                        let out = root.appendingPathComponent("\(delivery).png")
                        let result = try await run([python, script, "--server", gateway, "--out", out.path, "--delivery", delivery] + Self.wide.args)
                        #expect(result.status == 0, "\(delivery): \(result.output)")
                        let written = try Data(contentsOf: out)
                        #expect(written.count == Self.wide.bytes && ContentDigest(of: written).hex == Self.wide.sha256, "\(delivery)")
                    }
                    let failed = try await run([python, script, "--server", gateway, "--out", root.appendingPathComponent("x.png").path, "--function", "chaos", "mode=error"])
                    #expect(failed.status != 0 && failed.output.contains("the job failed"), "\(failed.output)")
                    #expect(!FileManager.default.fileExists(atPath: root.appendingPathComponent("x.png").path))
                }
            }
        }
    }
}
