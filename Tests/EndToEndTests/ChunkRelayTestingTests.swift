import ChunkRelayTesting
import Foundation
import RelayClient
import RelayProtocol
import TestSupport
import Testing

extension EndToEnd {
    /// ChunkRelayTesting as a user's test suite would call it.
    @Suite(.timeLimit(.minutes(5))) struct ChunkRelayTestingTests {
        @Test func withChunkRelayRunsTheFlowAndAlwaysTearsDown() async throws {
            let functions = repositoryRoot.appendingPathComponent("functions")
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("testing-\(UUID().uuidString).png")
            defer { try? FileManager.default.removeItem(at: file) }
            let gateway = try await withChunkRelay(functions: functions) { relay in
                let image = try await relay.client.generate(
                    CreateJobRequest(function: "map-render", params: ["width": .number(256), "height": .number(256), "seed": .number(7)]), to: file
                )
                #expect(image.sha256 == "3d3e833f7624919893ad45d2875c28291efb7dd6d1cd9377ef98d296bfb23002")
                #expect(relay.functionURL(of: "map-render")?.hasPrefix("http://127.0.0.1:") == true)
                return relay.gatewayURL
            }
            // Torn down: nothing listens there any more.
            await #expect(throws: (any Error).self) { _ = try await RelayClient(baseURL: gateway).functions() }

            // Also when the body throws.
            struct Expected: Error {}
            await #expect(throws: Expected.self) {
                try await withChunkRelay(functions: functions) { _ in throw Expected() }
            }
        }
    }
}
