import Foundation
import GRDB
import NIOCore
import PostgresNIO
import RelayProtocol
import TestSupport
import Testing

@testable import Gateway

@Suite(.timeLimit(.minutes(5))) struct JobAPITests {
    /// A row whose state this build does not know (a newer version's, or a hand edit) is an error the
    /// client sees as a 500, never guessed into `failed`, and the gateway goes on serving other jobs.
    @Test func aStateTheLedgerHoldsButThisBuildDoesNotKnowIsAnErrorNotAGuess() async throws {
        try await GatewayHarness.run { h in
            let odd = try await h.json(.POST, "/v1/jobs", #"{"function":"map-render"}"#).decode(JobCreated.self)
            _ = try await h.invoker.nextEvent()
            switch h.gateway.lifecycle.store {
            case let sqlite as SQLiteJobStore:
                try await sqlite.database.write { try $0.execute(sql: "UPDATE job SET state = 'paused' WHERE id = ?", arguments: [odd.id]) }
            case let postgres as PostgresJobStore:
                try await postgres.client.query("UPDATE chunkrelay_job SET state = 'paused' WHERE id = \(odd.id)")
            default:
                Issue.record("a store this test does not know")
            }
            let read = try await h.request(.GET, "/v1/jobs/\(odd.id)")
            #expect(read.status == 500)
            #expect(read.errorCode == GatewayErrorCode.internalError.rawValue)
            #expect(try await h.request(.DELETE, "/v1/jobs/\(odd.id)").status == 500, "not cancelled as if it were some known state")
            let other = try await h.json(.POST, "/v1/jobs", #"{"function":"chaos"}"#)
            #expect(other.status == 202, "the gateway goes on")
        }
    }

    @Test func createReturns202WithIdEventsAndOneShotImage() async throws {
        try await GatewayHarness.run { h in
            let response = try await h.json(.POST, "/v1/jobs", #"{"function":"map-render","params":{"width":64,"height":32,"seed":9},"delivery":"retrieve"}"#)
            #expect(response.status == 202)
            let created = try response.decode(JobCreated.self)
            #expect(RandomToken.isWellFormed(created.id))
            #expect(created.state == .queued)
            #expect(created.events == "/v1/jobs/\(created.id)/events")
            let image = try #require(created.image)
            #expect(image.hasPrefix("/v1/images/") && RandomToken.isWellFormed(image.dropFirst("/v1/images/".count)))
            #expect(response.headers["location"] == "/v1/jobs/\(created.id)")

            // The function is invoked with what it needs to upload, and the job says it is running.
            let event = try await h.invoker.nextEvent()
            #expect(event.jobId == created.id)
            #expect(event.attempt == 1)
            #expect(event.chunkSize == RelayLimits.defaultChunkSize)
            #expect(event.ingestURL == "\(h.baseURL)/v1/jobs/\(created.id)")
            #expect(RandomToken.isWellFormed(event.uploadToken))
            #expect(event.params == ["width": .number(64), "height": .number(32), "seed": .number(9)])
            let status = try await h.job(created.id)
            #expect(status.state == .running)
            #expect(status.attempts == 1)
            #expect(status.image == created.image)
            h.invoker.finish(event, .failed(JobError(code: "test", message: "done")))
        }
    }

    @Test func badJobRequestsGetClearErrors() async throws {
        try await GatewayHarness.run { h in
            let cases: [(String, Int, String)] = [
                ("not json", 400, "invalid_request"),
                (#"{"params":{}}"#, 400, "invalid_request"),
                (#"{"function":42}"#, 400, "invalid_request"),
                (#"{"function":"map-render","delivery":"carrier-pigeon"}"#, 400, "invalid_request"),
                (#"{"function":"no-such-function"}"#, 404, "function_not_found"),
            ]
            for (body, status, code) in cases {
                let response = try await h.json(.POST, "/v1/jobs", body)
                #expect(response.status == status, "\(body)")
                #expect(response.errorCode == code, "\(body): \(response.text)")
                #expect(response.headers["content-type"] == "application/json")
            }
            let huge = #"{"function":"map-render","params":{"x":""# + String(repeating: "a", count: 300_000) + #""}}"#
            let tooLarge = try await h.json(.POST, "/v1/jobs", huge)
            #expect(tooLarge.status == 413)
            #expect(tooLarge.errorCode == "body_too_large")
            #expect(h.invoker.invocationCount == 0)
        }
    }

    @Test func unknownJobsAndRoutesAre404InJSON() async throws {
        try await GatewayHarness.run { h in
            for path in ["/v1/jobs/nope", "/v1/jobs/\(RandomToken.make())", "/v1/jobs/..%2F..%2Fetc", "/v1/nothing-here"] {
                let response = try await h.request(.GET, path)
                #expect(response.status == 404, "\(path)")
                #expect(response.errorCode != nil, "\(path): \(response.text)")
            }
            let delete = try await h.request(.DELETE, "/v1/jobs/\(RandomToken.make())")
            #expect(delete.status == 404)
            #expect(delete.errorCode == "job_not_found")
        }
    }

    @Test func queueIsFIFOWithPositions() async throws {
        try await GatewayHarness.run(configure: { $0.maxConcurrency = 1 }) { h in
            let (first, firstEvent) = try await h.createJob()
            var queued: [JobCreated] = []
            for _ in 0..<3 {
                queued.append(try await h.json(.POST, "/v1/jobs", #"{"function":"map-render"}"#).decode(JobCreated.self))
            }
            #expect(try await h.job(first.id).state == .running)
            for (offset, job) in queued.enumerated() {
                let status = try await h.job(job.id)
                #expect(status.state == .queued)
                #expect(status.position == offset + 1)
            }
            // Cancelling the head of the queue moves the others up.
            let cancelled = try await h.request(.DELETE, "/v1/jobs/\(queued[0].id)")
            #expect(cancelled.status == 200)
            #expect(try cancelled.decode(JobStatus.self).state == .cancelled)
            #expect(try await h.job(queued[1].id).position == 1)
            #expect(try await h.job(queued[2].id).position == 2)
            #expect(try await h.request(.DELETE, "/v1/jobs/\(queued[0].id)").errorCode == "job_finished")

            // When the running job ends, the next in line is invoked.
            h.invoker.finish(firstEvent, .failed(JobError(code: "test", message: "x")))
            let next = try await h.invoker.nextEvent()
            #expect(next.jobId == queued[1].id)
            #expect(try await h.job(queued[2].id).position == 1)
            h.invoker.finish(next, .failed(JobError(code: "test", message: "x")))
            let last = try await h.invoker.nextEvent()
            #expect(last.jobId == queued[2].id)
            h.invoker.finish(last, .failed(JobError(code: "test", message: "x")))
        }
    }

    @Test func healthAndMetrics() async throws {
        try await GatewayHarness.run { h in
            let health = try await h.request(.GET, "/healthz")
            #expect(health.status == 200)
            #expect(health.text == #"{"status":"ok"}"#)
            _ = try await h.json(.POST, "/v1/jobs", #"{"function":"map-render"}"#)
            try await h.eventually("the job to start") { try await h.request(.GET, "/metrics").text.contains(#"chunkrelay_jobs{state="running"} 1"#) }
            let metrics = try await h.request(.GET, "/metrics")
            #expect(metrics.headers["content-type"]?.hasPrefix("text/plain") == true)
            #expect(metrics.text.contains("# TYPE chunkrelay_jobs gauge"))
        }
    }

    @Test func theFunctionsAreListed() async throws {
        try await GatewayHarness.run { h in
            let listed = try await h.request(.GET, "/v1/functions")
            #expect(listed.status == 200)
            #expect(try listed.decode(FunctionList.self) == FunctionList(functions: [FunctionSummary(name: "chaos"), FunctionSummary(name: "map-render")]))
        }
    }

    @Test func stateFilesAreOwnerOnly() async throws {
        try await GatewayHarness.run { h in
            var modes: [String: Int] = [:]
            // With PostgreSQL, the ledger and the bytes are in the database: the folder holds nothing of them.
            let names = GatewayHarness.usesSQLite ? ["", "spool", "images", "ledger.sqlite"] : [""]
            for name in names {
                let path = h.stateDirectory.appendingPathComponent(name).path
                modes[name] = (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue
            }
            let expected = GatewayHarness.usesSQLite ? ["": 0o700, "spool": 0o700, "images": 0o700, "ledger.sqlite": 0o600] : ["": 0o700]
            #expect(modes == expected)
        }
    }
}
