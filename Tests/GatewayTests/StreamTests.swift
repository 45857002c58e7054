import AsyncHTTPClient
import Foundation
import NIOCore
import RelayProtocol
import TestSupport
import Testing

@testable import Gateway

@Suite(.timeLimit(.minutes(5))) struct StreamTests {
    @Test func chunksArriveInIndexOrderThenDone() async throws {
        try await GatewayHarness.run(configure: GatewayHarness.smallChunks) { h in
            let image = GatewayHarness.pattern(4096 * 3 + 500, seed: 11)
            let (created, event) = try await h.createStreamJob()
            #expect(created.image == nil)
            var reader = try await EventStreamReader(h, jobId: created.id)
            #expect(reader.status == 200)
            let started = try await reader.read { $0.event == "started" }
            #expect(started.last?.json["attempt"] as? Int == 1)
            // Out of order on the way in, in order on the way out.
            for index in [2, 0, 3, 1] {
                #expect(try await h.putChunk(event, index: index, bytes: h.chunk(image, index, size: 4096)).status == 201)
            }
            #expect(try await h.complete(event, chunks: 4, bytes: image.count, sha256: ContentDigest(of: image).hex).status == 200)
            h.invoker.finish(event, .succeeded)
            let events = try await reader.read { $0.event == "done" }
            let chunks = events.filter { $0.event == "chunk" }
            #expect(chunks.map(\.id) == ["0", "1", "2", "3"])
            #expect(chunks.flatMap(\.chunkBytes) == image)
            let done = try #require(events.last)
            #expect(done.event == "done")
            #expect(done.json["sha256"] as? String == ContentDigest(of: image).hex)
            #expect(done.json["bytes"] as? Int == image.count)
            #expect(done.json["chunks"] as? Int == 4)
            #expect(try await reader.next() == nil, "the stream ends after done")
            #expect(try await h.job(created.id).state == .done)
        }
    }

    @Test func aResumeAfterACutLosesAndRepeatsNothing() async throws {
        try await GatewayHarness.run(configure: GatewayHarness.smallChunks) { h in
            let image = GatewayHarness.pattern(4096 * 8, seed: 12)
            let (created, event) = try await h.createStreamJob()
            var first = try await EventStreamReader(h, jobId: created.id)
            for index in 0..<3 {
                #expect(try await h.putChunk(event, index: index, bytes: h.chunk(image, index, size: 4096)).status == 201)
            }
            let before = try await first.read { $0.event == "chunk" && $0.id == "2" }.filter { $0.event == "chunk" }
            // The connection is cut (the reader is dropped); the function goes on uploading meanwhile.
            _ = consume first
            for index in 3..<6 {
                #expect(try await h.putChunk(event, index: index, bytes: h.chunk(image, index, size: 4096)).status == 201)
            }
            // Resume with the header...
            var second = try await EventStreamReader(h, jobId: created.id, lastEventID: "2")
            let middle = try await second.read { $0.event == "chunk" && $0.id == "5" }.filter { $0.event == "chunk" }
            _ = consume second
            for index in 6..<8 {
                #expect(try await h.putChunk(event, index: index, bytes: h.chunk(image, index, size: 4096)).status == 201)
            }
            #expect(try await h.complete(event, chunks: 8, bytes: image.count, sha256: ContentDigest(of: image).hex).status == 200)
            h.invoker.finish(event, .succeeded)
            // ...and with the query parameter a browser uses on its first connection.
            var third = try await EventStreamReader(h, jobId: created.id, query: "?lastEventId=5")
            let rest = try await third.read { $0.event == "done" }.filter { $0.event == "chunk" }
            let all = before + middle + rest
            #expect(all.map(\.id) == (0..<8).map { String($0) })
            #expect(all.flatMap(\.chunkBytes) == image)
        }
    }

    @Test func retrieveJobsGetReadyWithTheImagePath() async throws {
        try await GatewayHarness.run(configure: GatewayHarness.smallChunks) { h in
            let image = GatewayHarness.pattern(5000, seed: 2)
            let (created, event) = try await h.createJob()
            var reader = try await EventStreamReader(h, jobId: created.id)
            try await h.uploadImage(image, for: event)
            let events = try await reader.read { $0.event == "ready" }
            #expect(events.first?.event == "started")
            #expect(events.contains { $0.event == "progress" }, "the upload's progress is pushed")
            #expect(!events.contains { $0.event == "chunk" }, "retrieve mode sends no chunks")
            let ready = try #require(events.last)
            #expect(ready.event == "ready")
            #expect(ready.json["image"] as? String == created.image)
            #expect(ready.json["sha256"] as? String == ContentDigest(of: image).hex)
            #expect(ready.json["bytes"] as? Int == 5000)
        }
    }

    @Test func aFailureIsAFailedEvent() async throws {
        try await GatewayHarness.run(configure: GatewayHarness.smallChunks) { h in
            let (created, event) = try await h.createStreamJob()
            var reader = try await EventStreamReader(h, jobId: created.id)
            h.invoker.finish(event, .failed(JobError(code: "function_error", message: "Chaos.Error: boom")))
            let failed = try #require(try await reader.read { $0.event == "failed" }.last)
            #expect(failed.event == "failed")
            #expect(failed.json["code"] as? String == "function_error")
            #expect(failed.json["message"] as? String == "Chaos.Error: boom")
        }
    }

    @Test func tenJobsOverALimitOfTwoCountDownInFIFOOrder() async throws {
        try await GatewayHarness.run(configure: { $0.maxConcurrency = 2; $0.chunkSize = 4096 }) { h in
            var jobs: [JobCreated] = []
            for _ in 0..<10 {
                jobs.append(try await h.json(.POST, "/v1/jobs", #"{"function":"map-render","delivery":"stream"}"#).decode(JobCreated.self))
            }
            // Every job's client listens from the start and records the positions it is told.
            let seen = Locked<[Int: [Int]]>([:])
            let started = Locked<Set<Int>>([])
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (offset, job) in jobs.enumerated() {
                    group.addTask {
                        var reader = try await EventStreamReader(h, jobId: job.id)
                        while let event = try await reader.next() {
                            if event.event == "queued", let position = event.json["position"] as? Int {
                                seen.update { $0[offset, default: []].append(position) }
                            }
                            if event.event == "started" {
                                _ = started.update { $0.insert(offset) }
                                return
                            }
                        }
                    }
                }
                // Finish invocations one at a time; after each, every waiting client must be told its new
                // place before the next one finishes (pushed, not polled: nobody asks).
                var startedOrder: [String] = []
                for finished in 0..<10 {
                    try await h.eventually("clients to hear of the change (\(finished) finished): \(seen.value.sorted { $0.key < $1.key }), started \(started.value.sorted())") {
                        (min(finished + 2, 10)..<10).allSatisfy { seen.value[$0]?.last == $0 - finished - 1 }
                            && (0..<min(10, finished + 2)).allSatisfy { started.value.contains($0) }
                    }
                    let event = try await h.invoker.nextEvent()
                    startedOrder.append(event.jobId)
                    h.invoker.finish(event, .failed(JobError(code: "t", message: "t")))
                }
                // The first two start at once (the limit is two), so their invocations may come in either order.
                #expect(Set(startedOrder.prefix(2)) == Set(jobs.prefix(2).map(\.id)), "FIFO")
                #expect(Array(startedOrder.dropFirst(2)) == Array(jobs.dropFirst(2).map(\.id)), "FIFO")
                try await group.waitForAll()
            }
            for offset in 0..<10 {
                // Job k waited behind k - 1 others: told k-1, then each move up, down to 1, then started.
                let expected = offset < 2 ? [] : Array((1...(offset - 1)).reversed())
                #expect((seen.value[offset] ?? []) == expected, "job \(offset)")
            }
        }
    }

    @Test func cancellingAJobMovesTheOthersUp() async throws {
        try await GatewayHarness.run(configure: { $0.maxConcurrency = 1; $0.chunkSize = 4096 }) { h in
            let (_, running) = try await h.createStreamJob()
            let a = try await h.json(.POST, "/v1/jobs", #"{"function":"map-render","delivery":"stream"}"#).decode(JobCreated.self)
            let b = try await h.json(.POST, "/v1/jobs", #"{"function":"map-render","delivery":"stream"}"#).decode(JobCreated.self)
            var reader = try await EventStreamReader(h, jobId: b.id)
            #expect(try await reader.next()?.json["position"] as? Int == 2)
            #expect(try await h.request(.DELETE, "/v1/jobs/\(a.id)").status == 200)
            let moved = try #require(try await reader.next())
            #expect(moved.event == "queued")
            #expect(moved.json["position"] as? Int == 1)
            var cancelled = try await EventStreamReader(h, jobId: a.id)
            #expect(try await cancelled.next()?.json["code"] as? String == "cancelled")
            h.invoker.finish(running, .failed(JobError(code: "t", message: "t")))
            #expect(try await reader.next()?.event == "started")
            h.invoker.finish(try await h.invoker.nextEvent(), .failed(JobError(code: "t", message: "t")))
        }
    }

    @Test func cancellingARunningJobStopsItsInvocation() async throws {
        try await GatewayHarness.run(configure: GatewayHarness.smallChunks) { h in
            let (created, event) = try await h.createStreamJob()
            #expect(try await h.request(.DELETE, "/v1/jobs/\(created.id)").status == 200)
            // The fake invoker reports the cancellation it received from the gateway.
            try await h.eventually("the invocation to be cancelled") { h.invoker.wasCancelled(event) }
            #expect(try await h.putChunk(event, index: 0, bytes: [1]).status == 401)
        }
    }

    @Test func aFinishedStreamCanBeResumedUntilItsGraceEnds() async throws {
        // Uploaded before any client connects: a client grace longer than any loaded machine's upload.
        try await GatewayHarness.run(configure: { $0.chunkSize = 4096; $0.streamGrace = .seconds(30); $0.clientGrace = .seconds(600) }) { h in
            let image = GatewayHarness.pattern(9000, seed: 4)
            let (created, event) = try await h.createStreamJob()
            try await h.uploadImage(image, for: event)
            var late = try await EventStreamReader(h, jobId: created.id, lastEventID: "0")
            let events = try await late.read { $0.event == "done" }
            #expect(events.filter { $0.event == "chunk" }.map(\.id) == ["1", "2"])
            await h.gateway.sweepFinishedStreams(now: Date().timeIntervalSince1970 + 31)
            let gone = try await h.request(.GET, "/v1/jobs/\(created.id)/events", headers: [("Last-Event-ID", "0")])
            #expect(gone.status == 410)
            #expect(gone.errorCode == "stream_expired")
            #expect(try await h.keptSpool().isEmpty)
        }
    }

    @Test func aReaderStillCatchingUpKeepsTheSpool() async throws {
        try await GatewayHarness.run(configure: { $0.chunkSize = 4096; $0.streamGrace = .seconds(1) }) { h in
            let image = GatewayHarness.pattern(4096 * 3, seed: 9)
            let (created, event) = try await h.createStreamJob()
            let delivered = try await Self.readWhileSweeping(h, jobId: created.id) { try await h.uploadImage(image, for: event) }
            #expect(delivered == image)
            try await h.eventually("the spool to go once nobody reads") {
                await h.gateway.sweepFinishedStreams(now: Date().timeIntervalSince1970 + 60)
                return try await h.keptSpool().isEmpty
            }
        }
    }

    /// Reads a stream to its end, with a janitor pass (long after the grace) between upload and reading.
    static func readWhileSweeping(_ h: GatewayHarness, jobId: String, upload: () async throws -> Void) async throws -> [UInt8] {
        var reader = try await EventStreamReader(h, jobId: jobId)
        _ = try await reader.read { $0.event == "started" }
        try await upload()
        await h.gateway.sweepFinishedStreams(now: Date().timeIntervalSince1970 + 60)
        let events = try await reader.read { $0.event == "done" }
        return events.filter { $0.event == "chunk" }.flatMap(\.chunkBytes)
    }

    @Test func aStreamJobWhoseClientIsGoneIsCancelled() async throws {
        try await GatewayHarness.run(configure: { $0.maxConcurrency = 1; $0.chunkSize = 4096; $0.clientGrace = .seconds(30) }) { h in
            let (watchedJob, running) = try await h.createStreamJob()
            let abandoned = try await h.json(.POST, "/v1/jobs", #"{"function":"map-render","delivery":"stream"}"#).decode(JobCreated.self)
            let waiting = try await h.json(.POST, "/v1/jobs", #"{"function":"map-render","delivery":"stream"}"#).decode(JobCreated.self)
            var watcher = try await EventStreamReader(h, jobId: watchedJob.id)
            var behind = try await EventStreamReader(h, jobId: waiting.id)
            _ = try await watcher.next()
            #expect(try await behind.next()?.json["position"] as? Int == 2)
            await h.gateway.cancelAbandonedStreams(now: Date().timeIntervalSince1970 + 10)
            #expect(try await h.job(abandoned.id).state == .queued, "within the grace")
            await h.gateway.cancelAbandonedStreams(now: Date().timeIntervalSince1970 + 90)
            let status = try await h.job(abandoned.id)
            #expect(status.state == .cancelled)
            #expect(status.error?.code == "client_gone")
            #expect(try await h.job(watchedJob.id).state == .running, "a watched job is kept")
            #expect(try await behind.next()?.json["position"] as? Int == 1)
            h.invoker.finish(running, .failed(JobError(code: "t", message: "t")))
            h.invoker.finish(try await h.invoker.nextEvent(), .failed(JobError(code: "t", message: "t")))
        }
    }

    @Test func heartbeatsKeepIdleStreamsAlive() async throws {
        try await GatewayHarness.run(configure: { $0.maxConcurrency = 1; $0.heartbeatInterval = .milliseconds(100) }) { h in
            let (_, running) = try await h.createStreamJob()
            let queued = try await h.json(.POST, "/v1/jobs", #"{"function":"map-render","delivery":"stream"}"#).decode(JobCreated.self)
            var reader = try await EventStreamReader(h, jobId: queued.id)
            _ = try await reader.next()
            // Two heartbeats reach a stream with nothing else to say (observed, not waited for by the clock).
            try await reader.readComments(atLeast: 2)
            h.invoker.finish(running, .failed(JobError(code: "t", message: "t")))
            _ = try await reader.read { $0.event == "started" }
            #expect(reader.comments >= 2)
            h.invoker.finish(try await h.invoker.nextEvent(), .failed(JobError(code: "t", message: "t")))
        }
    }

    @Test func aFunctionAtItsOwnLimitDoesNotBlockOthers() async throws {
        try await GatewayHarness.run(configure: { $0.maxConcurrency = 4 }) { h in
            // The fake invoker gives `chaos` a reserved concurrency of 1.
            let (_, first) = try await h.createJob(function: "chaos")
            let blocked = try await h.json(.POST, "/v1/jobs", #"{"function":"chaos"}"#).decode(JobCreated.self)
            let (other, otherEvent) = try await h.createJob(function: "map-render")
            #expect(try await h.job(blocked.id).state == .queued)
            #expect(try await h.job(other.id).state == .running)
            h.invoker.finish(first, .failed(JobError(code: "t", message: "t")))
            let next = try await h.invoker.nextEvent()
            #expect(next.jobId == blocked.id)
            h.invoker.finish(next, .failed(JobError(code: "t", message: "t")))
            h.invoker.finish(otherEvent, .failed(JobError(code: "t", message: "t")))
        }
    }

    @Test func aBadLastEventIDIs400() async throws {
        try await GatewayHarness.run { h in
            let (created, event) = try await h.createJob()
            let response = try await h.request(.GET, "/v1/jobs/\(created.id)/events", headers: [("Last-Event-ID", "abc")])
            #expect(response.status == 400)
            #expect(response.errorCode == "invalid_last_event_id")
            h.invoker.finish(event, .failed(JobError(code: "t", message: "t")))
        }
    }
}

@Suite(.timeLimit(.minutes(5))) struct RetryTests {
    @Test func aRetryRollsTheFailedAttemptBackAndStreamsTheNewOne() async throws {
        try await GatewayHarness.run(configure: GatewayHarness.smallChunks) { h in
            let first = GatewayHarness.pattern(4096 * 2 + 10, seed: 21)
            let second = GatewayHarness.pattern(4096 * 3, seed: 22)
            let (created, attempt1) = try await h.createStreamJob()
            var reader = try await EventStreamReader(h, jobId: created.id)
            for index in 0..<2 {
                #expect(try await h.putChunk(attempt1, index: index, bytes: h.chunk(first, index, size: 4096)).status == 201)
            }
            let early = try await reader.read { $0.event == "chunk" && $0.id == "1" }.filter { $0.event == "chunk" }
            #expect(early.map(\.id) == ["0", "1"])

            h.invoker.failAndRetry(attempt1, JobError(code: "function_crashed", message: "Runtime.ExitError: exit status 4"))
            let attempt2 = try await h.invoker.nextEvent()
            #expect(attempt2.jobId == created.id && attempt2.attempt == 2)
            #expect(attempt2.uploadToken != attempt1.uploadToken)
            // The failed attempt is gone: its token opens nothing, its chunks are forgotten.
            #expect(try await h.putChunk(attempt1, index: 2, bytes: h.chunk(first, 2, size: 4096)).status == 401)
            let status = try await h.job(created.id)
            #expect(status.attempts == 2 && status.chunks == 0 && status.state == .running)
            #expect(status.error?.code == "function_crashed")
            #expect(!(try await h.keptSpool()).contains { $0.hasSuffix(".1.part") })

            try await h.uploadImage(second, for: attempt2)
            let rest = try await reader.read { $0.event == "done" }
            let retryAt = try #require(rest.firstIndex { $0.event == "retrying" })
            #expect(rest[..<retryAt].allSatisfy { $0.event == "progress" }, "nothing of the new attempt before retrying")
            #expect(rest[retryAt].json["attempt"] as? Int == 2)
            #expect(rest[retryAt].json["code"] as? String == "function_crashed")
            #expect(rest[retryAt + 1].event == "started")
            let chunks = rest.filter { $0.event == "chunk" }
            #expect(chunks.map(\.id) == ["2:0", "2:1", "2:2"])
            #expect(chunks.flatMap(\.chunkBytes) == second)
            #expect(rest.last?.json["sha256"] as? String == ContentDigest(of: second).hex)
            #expect(try await h.job(created.id).error == nil)

            // A client resuming with an id of the abandoned attempt is told to start over.
            var late = try await EventStreamReader(h, jobId: created.id, lastEventID: "1")
            let replay = try await late.read { $0.event == "done" }
            #expect(replay.first?.event == "retrying")
            #expect(replay.filter { $0.event == "chunk" }.flatMap(\.chunkBytes) == second)
            // And one resuming within the new attempt continues where it was.
            var current = try await EventStreamReader(h, jobId: created.id, lastEventID: "2:1")
            let tail = try await current.read { $0.event == "done" }
            #expect(tail.filter { $0.event == "chunk" }.map(\.id) == ["2:2"])
        }
    }

    /// The runtime asks for a retry of an attempt whose job was cancelled meanwhile (its failure raced the
    /// DELETE): the gateway refuses it, so no new attempt, token or invocation comes of it.
    @Test func aRetryOfACancelledJobIsRefused() async throws {
        try await GatewayHarness.run(configure: GatewayHarness.smallChunks) { h in
            let (created, attempt1) = try await h.createJob()
            #expect(try await h.request(.DELETE, "/v1/jobs/\(created.id)").status == 200)
            let retry = await h.gateway.prepareRetry(jobId: created.id, attempt: attempt1.attempt, failure: JobError(code: "function_error", message: "x"), baseURL: h.baseURL)
            #expect(retry == nil, "a cancelled job was given attempt \(retry?.attempt ?? 0)")
            let status = try await h.job(created.id)
            #expect(status.state == .cancelled)
            #expect(status.attempts == 1)
            #expect(try await h.putChunk(attempt1, index: 0, bytes: [1, 2, 3]).status == 401, "the cancelled attempt's token is dead")
        }
    }
}
