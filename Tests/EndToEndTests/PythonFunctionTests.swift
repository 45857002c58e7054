import Foundation
import RelayClient
import RelayProtocol
import TestSupport
import Testing

extension EndToEnd {
    /// A generator function in Python, run by AWS's own runtime interface client (awslambdaric, from PyPI),
    /// through the whole flow. The runtime builds its virtual environment on first use, as `sam build` would.
    @Suite(.timeLimit(.minutes(10))) struct PythonFunctionTests {
        static var built: Bool {
            FileManager.default.fileExists(atPath: repositoryRoot.appendingPathComponent("functions/gradient-py/.venv/bin/python").path)
        }

        @Test(.enabled("needs functions/gradient-py/.venv (built on first use) and Pillow; CI has both") {
            if runningInCI { return true }
            guard built else { return false }
            return await Pillow.python() != nil
        })
        func aPythonFunctionCompletesAJobEndToEnd() async throws {
            try await withChunkRelay(chunkSize: 1 << 20) { gateway, _ in
                let client = RelayClient(baseURL: gateway)
                let out = FileManager.default.temporaryDirectory.appendingPathComponent("gradient-\(UUID().uuidString).png")
                defer { try? FileManager.default.removeItem(at: out) }
                let image = try await client.generate(
                    CreateJobRequest(function: "gradient-py", params: ["width": .number(3072), "height": .number(2100)], delivery: .stream), to: out)
                #expect(image.bytes > 6_291_556, "larger than a buffered Lambda response")
                #expect(image.contentType == "image/png")
                #expect(try await Pillow.describe(out) == "3072x2100 L")
                // Its errors come back the way awslambdaric reports them.
                let failed = try await client.createJob(CreateJobRequest(function: "gradient-py", params: ["width": .number(0)]))
                await #expect {
                    _ = try await client.waitUntilReady(failed.id)
                } throws: { error in
                    (error as? RelayClientError)?.message.contains("width and height must be") == true
                }
            }
        }
    }
}
