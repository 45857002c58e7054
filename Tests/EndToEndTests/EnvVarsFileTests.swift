import AsyncHTTPClient
import Foundation
import NIOCore
import TestSupport
import Testing

@testable import ChunkRelayBench
@testable import chunkrelay

extension EndToEnd {
    /// `chunkrelay serve --env-vars FILE` (SAM CLI's format), as a user starts it.
    @Suite(.timeLimit(.minutes(5))) struct EnvVarsFileTests {
        @Test func theFunctionSeesTheFilesVariables() async throws {
            try await withScratchDirectory("env-vars") { root in
                let file = root.appendingPathComponent("env.json")
                try Data(#"{"Parameters": {"STAGE": "local", "SHARED": "all"}, "chaos": {"SHARED": "chaos", "PORT": 8080}, "typo": {"X": "1"}}"#.utf8)
                    .write(to: file)
                let server = try await ServeProcess.start(stateDirectory: root.appendingPathComponent("state"), arguments: ["--env-vars", file.path])
                var request = HTTPClientRequest(url: "\(server.runtime)/2015-03-31/functions/chaos/invocations")
                request.method = .POST
                request.body = .bytes(ByteBuffer(string: #"{"mode":"env"}"#))
                let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
                let body = try await response.body.collect(upTo: 1 << 20)
                let environment = try #require(try JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: String], "\(String(buffer: body))")
                #expect(environment["STAGE"] == "local")
                #expect(environment["SHARED"] == "chaos")
                #expect(environment["PORT"] == "8080")
                let log = (try? String(contentsOf: server.log, encoding: .utf8)) ?? ""
                #expect(log.contains("section \"typo\" names no function"), "\(log.suffix(2000))")
                #expect(await server.terminate() == 0)
            }
        }

        /// A reserved variable or a malformed file stops `serve` before it listens, with the file, the line
        /// and the reason on its standard error.
        @Test(arguments: [
            ("{\n  \"chaos\": {\n    \"AWS_LAMBDA_FUNCTION_NAME\": \"other\"\n  }\n}\n", ":3: Lambda was unable to configure your environment variables"),
            ("{\n  \"chaos\": {\n    \"A\": \"1\"\n    \"B\": \"2\"\n  }\n}\n", ":4: not valid JSON"),
        ])
        func aBadFileStopsServe(text: String, expected: String) async throws {
            try await withScratchDirectory("env-vars-bad") { root in
                let file = root.appendingPathComponent("env.json")
                try Data(text.utf8).write(to: file)
                let result = try await run([
                    ServeProcess.binary.path, "serve", "--port", "0", "--runtime-port", "0", "--state-dir", root.appendingPathComponent("state").path,
                    "--functions", repositoryRoot.appendingPathComponent("functions").path, "--env-vars", file.path,
                ])
                #expect(result.status != 0)
                #expect(result.output.contains(file.path + expected), "\(result.output)")
                #expect(!result.output.contains("listening on"))
            }
        }
    }
}
