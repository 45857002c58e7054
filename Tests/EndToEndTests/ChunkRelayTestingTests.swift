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
            let urls = try await withChunkRelay(functions: functions) { relay in
                let image = try await relay.client.generate(
                    CreateJobRequest(function: "map-render", params: ["width": .number(256), "height": .number(256), "seed": .number(7)]), to: file
                )
                #expect(image.sha256 == "3d3e833f7624919893ad45d2875c28291efb7dd6d1cd9377ef98d296bfb23002")
                let functionURL = try #require(relay.functionURL(of: "map-render"))
                #expect(functionURL.hasPrefix("http://127.0.0.1:"))
                #expect(Self.listening(relay.gatewayURL) && Self.listening(functionURL))
                return [relay.gatewayURL, functionURL]
            }
            // Torn down: nothing listens on the gateway's port or the runtime's any more.
            for url in urls { #expect(!Self.listening(url), "\(url) still accepts connections") }

            // Also when the body throws: the error reaches the caller, and the servers are gone.
            struct Expected: Error {}
            let thrownFrom = Locked<String?>(nil)
            await #expect(throws: Expected.self) {
                try await withChunkRelay(functions: functions) { relay in
                    thrownFrom.update { $0 = relay.gatewayURL }
                    throw Expected()
                }
            }
            let gateway = try #require(thrownFrom.value)
            #expect(!Self.listening(gateway), "\(gateway) still accepts connections after the body threw")
        }

        /// Whether something accepts TCP connections at the URL's port on loopback.
        static func listening(_ url: String) -> Bool {
            guard let port = URL(string: url)?.port, let client = try? RawClient(port: port) else { return false }
            client.reset()
            return true
        }
    }
}
