import Foundation
import RelayProtocol
import TestSupport
import Testing

@testable import Gateway

/// The ledger stays the size of recent work, and `/metrics` shows the size of everything that grows.
@Suite(.timeLimit(.minutes(2))) struct LedgerRetentionTests {
    static func gauge(_ name: String, in metrics: String) -> Int? {
        metrics.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Int($0.split(separator: " ").last ?? "") }
    }

    @Test func finishedJobsAreForgottenAfterTheirRetentionAndLiveOnesKept() async throws {
        try await GatewayHarness.run(configure: { $0.chunkSize = 4096; $0.finishedRetention = .seconds(60) }) { h in
            // One retrieved (consumed), one cancelled, one still ready.
            let (consumed, consumedImage) = try await h.readyImage(bytes: 10_000, seed: 1)
            let path = try #require(consumed.image)
            try await eventually("the retrieval to be recorded") {
                let response = try await h.request(.GET, path)
                if response.status == 200 { #expect(Array(response.body.readableBytesView) == consumedImage) }
                return try await h.job(consumed.id).state == .done
            }
            let (cancelled, _) = try await h.createJob()
            #expect(try await h.request(.DELETE, "/v1/jobs/\(cancelled.id)").status == 200)
            let (ready, _) = try await h.readyImage(bytes: 10_000, seed: 2)
            let before = try await h.request(.GET, "/metrics").text
            #expect(Self.gauge("chunkrelay_ledger_job_rows", in: before) == 3)
            #expect(Self.gauge("chunkrelay_ledger_chunk_rows", in: before) == 6)

            // Within the retention nothing goes: a consumed key still says 410.
            await h.gateway.forgetFinishedJobs()
            #expect(try await h.request(.GET, path).status == 410)

            // After it, the finished two go (chunk rows with them); the ready image stays retrievable.
            await h.gateway.forgetFinishedJobs(now: Date().timeIntervalSince1970 + 61)
            #expect(try await h.request(.GET, "/v1/jobs/\(consumed.id)").status == 404)
            #expect(try await h.request(.GET, "/v1/jobs/\(cancelled.id)").status == 404)
            #expect(try await h.request(.GET, path).status == 404)
            #expect(try await h.job(ready.id).state == .ready)
            let after = try await h.request(.GET, "/metrics").text
            #expect(Self.gauge("chunkrelay_ledger_job_rows", in: after) == 1)
            #expect(Self.gauge("chunkrelay_ledger_chunk_rows", in: after) == 3)
            // A new job still goes to the back of the queue (the order comes from the index).
            #expect(try await h.json(.POST, "/v1/jobs", #"{"function":"map-render"}"#).status == 202)
        }
    }

    @Test func metricsShowWhatClientsHold() async throws {
        try await GatewayHarness.run(configure: { $0.chunkSize = 4096 }) { h in
            let (created, event) = try await h.createStreamJob()
            var stream = try await EventStreamReader(h, jobId: created.id)
            _ = try await stream.read { $0.event == "started" }
            try await eventually("the subscriber to show") {
                Self.gauge("chunkrelay_event_subscribers", in: try await h.request(.GET, "/metrics").text) == 1
            }
            let metrics = try await h.request(.GET, "/metrics").text
            #expect(Self.gauge("chunkrelay_running_attempts", in: metrics) == 1)
            #expect(Self.gauge("chunkrelay_image_transfers", in: metrics) == 0)
            #expect(Self.gauge("chunkrelay_chunk_uploads", in: metrics) == 0)
            h.invoker.finish(event, .failed(JobError(code: "t", message: "t")))
            _ = try await stream.read { $0.event == "failed" }
            try await eventually("the subscriber and the attempt to go") {
                let text = try await h.request(.GET, "/metrics").text
                return Self.gauge("chunkrelay_event_subscribers", in: text) == 0 && Self.gauge("chunkrelay_running_attempts", in: text) == 0
            }
        }
    }
}
