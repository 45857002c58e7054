import Foundation
import RelayClient
import RelayProtocol
import TestSupport
import Testing

extension EndToEnd {
    /// RelayClient and task cancellation: a client that gives up takes its job with it.
    @Suite(.timeLimit(.minutes(5))) struct ClientCancellationTests {
        static func metrics(_ gateway: String) async throws -> String {
            let response = try await FunctionURLTests.send(gateway + "/metrics")
            return String(buffer: response.body)
        }

        @Test(arguments: [DeliveryMode.retrieve, .stream])
        func cancellingGenerateCancelsTheJob(delivery: DeliveryMode) async throws {
            try await withChunkRelay { gateway, _ in
                let client = RelayClient(baseURL: gateway)
                let file = FileManager.default.temporaryDirectory.appendingPathComponent("cancel-\(UUID().uuidString)")
                let sleeper = CreateJobRequest(function: "chaos", params: ["mode": .string("sleep"), "seconds": .number(120)], delivery: delivery)
                let task = Task { try await client.generate(sleeper, to: file) }
                try await eventually("the job to run") { try await Self.metrics(gateway).contains(#"chunkrelay_jobs{state="running"} 1"#) }
                task.cancel()
                await #expect(throws: CancellationError.self) { _ = try await task.value }
                // The job is cancelled (its function stopped), not left running for nobody.
                try await eventually("the job to be cancelled") { try await Self.metrics(gateway).contains(#"chunkrelay_jobs{state="cancelled"} 1"#) }
                #expect(try await Self.metrics(gateway).contains(#"chunkrelay_jobs{state="running"} 0"#))
                #expect(!FileManager.default.fileExists(atPath: file.path))
            }
        }
    }
}
