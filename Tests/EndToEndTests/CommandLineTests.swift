import AsyncHTTPClient
@testable import ChunkRelayBench
@testable import chunkrelay
import Foundation
import TestSupport
import Testing

extension EndToEnd {
    /// The `chunkrelay` executable as a user runs it: `serve` in one process, `generate` and `invoke` in others.
    @Suite(.timeLimit(.minutes(10))) struct CommandLineTests {
        static var executable: URL { ServeProcess.binary }

        @Test func serveGenerateAndInvoke() async throws {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let serve = try await ServeProcess.start(stateDirectory: directory.appendingPathComponent("state"))
            defer { serve.child.signal(SIGKILL) }
            let (gatewayURL, runtimeURL) = (serve.gateway, serve.runtime)

            let out = directory.appendingPathComponent("map.png")
            let generated = try await run([Self.executable.path, "generate", "--server", gatewayURL, "--function", "map-render", "--param", "width=512", "--param", "height=384", "--param", "seed=3", "--out", out.path])
            #expect(generated.status == 0, "\(generated.output)")
            #expect(generated.output.contains("verified"))
            #expect(generated.output.contains("ready:"))
            let imageURL = try #require(Self.url(after: "image will be at ", in: generated.output))
            let streamed = try await run([Self.executable.path, "generate", "--server", gatewayURL, "--function", "map-render", "--param", "width=512", "--param", "height=384", "--param", "seed=3", "--delivery", "stream", "--out", out.path + ".stream"])
            #expect(streamed.status == 0, "\(streamed.output)")
            #expect(streamed.output.contains("received of"))
            #expect(streamed.output.contains("done: "))
            #expect(try Data(contentsOf: URL(fileURLWithPath: out.path + ".stream")) == (try Data(contentsOf: out)), "stream and retrieve give the same bytes")
            let direct = try await run([Self.executable.path, "generate", "--server", gatewayURL, "--function", "map-render", "--param", "width=512", "--param", "height=384", "--param", "seed=3", "--delivery", "direct", "--out", out.path + ".direct"])
            #expect(direct.status == 0, "\(direct.output)")
            #expect(direct.output.contains("direct from http://127.0.0.1:"))
            #expect(try Data(contentsOf: URL(fileURLWithPath: out.path + ".direct")) == (try Data(contentsOf: out)), "direct and retrieve give the same bytes")
            let noURL = try await run([Self.executable.path, "generate", "--server", gatewayURL, "--function", "chaos", "--delivery", "direct", "--out", out.path + ".none"])
            #expect(noURL.status != 0 && noURL.output.contains("chaos has no Function URL"), "\(noURL.output)")
            #expect(FileManager.default.fileExists(atPath: out.path))
            #expect(!FileManager.default.fileExists(atPath: out.path + ".partial"))
            let again = try await HTTPClient.shared.execute(HTTPClientRequest(url: imageURL), timeout: .seconds(10))
            #expect(again.status.code == 410)

            let invoked = try await run([Self.executable.path, "invoke", "chaos", "--payload", #"{"mode":"echo"}"#, "--runtime", runtimeURL])
            #expect(invoked.status == 0, "\(invoked.output)")
            #expect(invoked.output.contains(#""function":"chaos""#))
            #expect(invoked.output.contains("START RequestId: "), "the log, as sam local invoke prints it")
            #expect(invoked.output.contains("REPORT RequestId: "))
            let failing = try await run([Self.executable.path, "invoke", "chaos", "--payload", #"{"mode":"error"}"#, "--runtime", runtimeURL])
            #expect(failing.status != 0)
            #expect(failing.output.contains("Chaos.Error"))

            let badParam = try await run([Self.executable.path, "generate", "--server", gatewayURL, "--function", "nope", "--out", out.path])
            #expect(badParam.status != 0)
            #expect(badParam.output.contains("function_not_found"))

            // SIGTERM stops it cleanly.
            let status = try await withDeadline(.seconds(30), "serve to stop after SIGTERM") { await serve.terminate() }
            #expect(status == 0, "\(serve.child.output)")
        }

        static func url(after marker: String, in text: String) -> String? {
            guard let range = text.range(of: marker) else { return nil }
            let rest = text[range.upperBound...]
            let end = rest.firstIndex(where: { $0 == ";" || $0 == "\n" || $0 == " " }) ?? rest.endIndex
            let url = String(rest[..<end])
            return url.isEmpty ? nil : url
        }
    }
}
