import Foundation
import NIOCore
import RelayProtocol
import TestSupport
import Testing

@testable import Gateway

/// Two gateway instances on one PostgreSQL store, as behind a round-robin load balancer: whatever
/// one is asked, it answers from the shared tables, and what happens on one wakes the other's clients.
@Suite(.enabled(if: GatewayHarness.postgres != nil, "needs CHUNKRELAY_TEST_POSTGRES (.ci/run sets it)"), .timeLimit(.minutes(2)))
struct ScaleOutTests {
    /// The invocation, from whichever instance's dispatcher claimed the job, and that instance.
    static func invocation(_ a: GatewayHarness, _ b: GatewayHarness) async throws -> (InvocationEvent, FakeInvoker) {
        var found: (InvocationEvent, FakeInvoker)?
        let deadline = ContinuousClock.now + .seconds(20)
        while found == nil, ContinuousClock.now < deadline {
            if let event = a.invoker.takeEvent() { found = (event, a.invoker) } else if let event = b.invoker.takeEvent() { found = (event, b.invoker) }
            if found == nil { try await Task.sleep(for: .milliseconds(5)) }
        }
        guard let found else { throw TestFailure("neither instance invoked the job") }
        return found
    }

    @Test func aStreamCreatedOnOneInstanceIsUploadedThereAndReadOnTheOther() async throws {
        try await GatewayHarness.run(configure: GatewayHarness.smallChunks) { a in
            try await GatewayHarness.run(sharingStoreOf: a) { b in
                let created = try await a.json(.POST, "/v1/jobs", #"{"function":"map-render","delivery":"stream"}"#).decode(JobCreated.self)
                // B's client waits before any chunk exists: only a notice from A can wake it.
                var reader = try await EventStreamReader(b, jobId: created.id)
                #expect(reader.status == 200)
                let (event, invoker) = try await Self.invocation(a, b)
                #expect(event.jobId == created.id)
                let image = GatewayHarness.pattern(4096 * 3 + 100, seed: 5)
                for index in 0..<4 {
                    #expect(try await a.putChunk(event, index: index, bytes: a.chunk(image, index, size: 4096)).status == 201)
                }
                #expect(try await a.complete(event, chunks: 4, bytes: image.count, sha256: ContentDigest(of: image).hex).status == 200)
                invoker.finish(event, .succeeded)
                let events = try await reader.read { $0.event == "done" || $0.event == "failed" }
                #expect(events.last?.event == "done")
                #expect(events.filter { $0.event == "chunk" }.flatMap(\.chunkBytes) == image, "B streamed what A stored")
                // A resume on A, from B's chunk 1, repeats nothing and loses nothing.
                var resumed = try await EventStreamReader(a, jobId: created.id, lastEventID: "1")
                let rest = try await resumed.read { $0.event == "done" }
                #expect(rest.filter { $0.event == "chunk" }.flatMap(\.chunkBytes) == Array(image[8192...]))
            }
        }
    }

    @Test func aRetrieveModeImageIsServedOnceByEitherInstance() async throws {
        try await GatewayHarness.run(configure: GatewayHarness.smallChunks) { a in
            try await GatewayHarness.run(sharingStoreOf: a) { b in
                let created = try await b.json(.POST, "/v1/jobs", #"{"function":"map-render","delivery":"retrieve"}"#).decode(JobCreated.self)
                let (event, invoker) = try await Self.invocation(a, b)
                let image = GatewayHarness.pattern(9000, seed: 8)
                for index in 0..<3 {
                    #expect(try await b.putChunk(event, index: index, bytes: b.chunk(image, index, size: 4096)).status == 201)
                }
                #expect(try await a.complete(event, chunks: 3, bytes: image.count, sha256: ContentDigest(of: image).hex).status == 200)
                invoker.finish(event, .succeeded)
                let path = try #require(created.image)
                #expect(try await b.job(created.id).state == .ready, "B sees what A completed")
                let first = try await a.request(.GET, path)
                #expect(first.status == 200)
                #expect(Array(first.body.readableBytesView) == image)
                // While A finishes the transfer (it waits for the client's last ACK) B answers 409; then 410.
                var second = try await b.request(.GET, path)
                let deadline = ContinuousClock.now + .seconds(10)
                while second.status == 409, ContinuousClock.now < deadline {
                    #expect(second.errorCode == "image_in_flight")
                    try await Task.sleep(for: .milliseconds(10))
                    second = try await b.request(.GET, path)
                }
                #expect(second.status == 410)
                #expect(second.errorCode == "image_consumed")
            }
        }
    }

    @Test func thirtyConcurrentGetsOverBothInstancesGiveExactlyOneImage() async throws {
        try await GatewayHarness.run(configure: GatewayHarness.smallChunks) { a in
            try await GatewayHarness.run(sharingStoreOf: a) { b in
                let created = try await a.json(.POST, "/v1/jobs", #"{"function":"map-render","delivery":"retrieve"}"#).decode(JobCreated.self)
                let (event, invoker) = try await Self.invocation(a, b)
                let image = GatewayHarness.pattern(4096 * 40, seed: 3)
                for index in 0..<40 {
                    #expect(try await a.putChunk(event, index: index, bytes: a.chunk(image, index, size: 4096)).status == 201)
                }
                #expect(try await a.complete(event, chunks: 40, bytes: image.count, sha256: ContentDigest(of: image).hex).status == 200)
                invoker.finish(event, .succeeded)
                let path = try #require(created.image)
                let results = try await withThrowingTaskGroup(of: HTTPResult.self) { group in
                    for index in 0..<30 { group.addTask { try await (index.isMultiple(of: 2) ? a : b).request(.GET, path) } }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                let whole = results.filter { $0.status == 200 }
                #expect(whole.count == 1, "statuses: \(results.map(\.status).sorted())")
                #expect(whole.first.map { Array($0.body.readableBytesView) == image } == true)
                #expect(results.allSatisfy { [200, 409, 410].contains($0.status) }, "the others are told it is in flight or gone")
            }
        }
    }

    @Test func aStreamWatchedOnOneInstanceIsNotTakenForAbandonedByTheOther() async throws {
        // A grace of 3 s: under the whole suite's load a janitor pass can take a while, and B's pass must
        // record its client before A's decides.
        try await GatewayHarness.run(configure: { $0.chunkSize = 4096; $0.clientGrace = .seconds(3); $0.janitorInterval = .milliseconds(100) }) { a in
            try await GatewayHarness.run(sharingStoreOf: a) { b in
                let created = try await a.json(.POST, "/v1/jobs", #"{"function":"map-render","delivery":"stream"}"#).decode(JobCreated.self)
                let (event, _) = try await Self.invocation(a, b)
                var reader = try await EventStreamReader(b, jobId: created.id)
                _ = try await reader.read { $0.event == "started" }
                // Well past the grace, with A's janitor running every 100 ms: B's client keeps the job alive.
                let watchedUntil = ContinuousClock.now + .seconds(5)
                while ContinuousClock.now < watchedUntil {
                    let status = try await a.job(created.id)
                    #expect(status.state == .running, "\(status.state) \(String(describing: status.error))")
                    try await Task.sleep(for: .milliseconds(250))
                }
                #expect(event.jobId == created.id)
            }
        }
    }

    @Test func aJobCancelledThroughOneInstanceStopsItsInvocationOnTheOther() async throws {
        try await GatewayHarness.run(configure: GatewayHarness.smallChunks) { a in
            try await GatewayHarness.run(sharingStoreOf: a) { b in
                let created = try await a.json(.POST, "/v1/jobs", #"{"function":"map-render"}"#).decode(JobCreated.self)
                let (event, invoker) = try await Self.invocation(a, b)
                let other = invoker === a.invoker ? b : a
                #expect(try await other.request(.DELETE, "/v1/jobs/\(created.id)").status == 200)
                try await a.eventually("the invocation on the instance running it to be stopped") { invoker.wasCancelled(event) }
                #expect(try await a.job(created.id).state == .cancelled)
            }
        }
    }

    @Test func theJobsOfAnInstanceThatStoppedRenewingItsLeaseAreTakenOver() async throws {
        try await GatewayHarness.run(configure: { $0.chunkSize = 4096; $0.janitorInterval = .milliseconds(100) }) { a in
            try await GatewayHarness.run(sharingStoreOf: a) { b in
                let created = try await a.json(.POST, "/v1/jobs", #"{"function":"map-render"}"#).decode(JobCreated.self)
                let (first, _) = try await Self.invocation(a, b)
                // What an instance killed with -9 leaves: its job running under a lease nobody renews.
                let store = try #require(a.gateway.lifecycle.store as? PostgresJobStore)
                try await store.client.query(
                    "UPDATE chunkrelay_job SET lease_owner = 'killed', lease_until = \(Date().timeIntervalSince1970 - 1) WHERE id = \(created.id)")
                let (second, invoker) = try await Self.invocation(a, b)
                #expect(second.jobId == created.id)
                #expect(second.attempt == first.attempt + 1, "a new attempt, as after a crash")
                #expect(try await a.putChunk(first, index: 0, bytes: [1, 2, 3]).status == 401, "the old attempt's token is dead")
                let image = GatewayHarness.pattern(5000, seed: 4)
                for index in 0..<2 {
                    #expect(try await b.putChunk(second, index: index, bytes: b.chunk(image, index, size: 4096)).status == 201)
                }
                #expect(try await b.complete(second, chunks: 2, bytes: image.count, sha256: ContentDigest(of: image).hex).status == 200)
                invoker.finish(second, .succeeded)
                let served = try await a.request(.GET, try #require(created.image))
                #expect(Array(served.body.readableBytesView) == image)
            }
        }
    }

    @Test func oneQueueAndOneConcurrencyLimitHoldAcrossInstances() async throws {
        try await GatewayHarness.run(configure: { $0.chunkSize = 4096; $0.maxConcurrency = 2 }) { a in
            try await GatewayHarness.run(sharingStoreOf: a) { b in
                // Each instance could run two on its own; together they run two, and the rest wait in one queue.
                var created: [String] = []
                for index in 0..<5 {
                    let instance = index.isMultiple(of: 2) ? a : b
                    created.append(try await instance.json(.POST, "/v1/jobs", #"{"function":"map-render"}"#).decode(JobCreated.self).id)
                }
                let ids = created
                try await a.eventually("two jobs to run") {
                    var running = 0
                    for id in ids where try await a.job(id).state == .running { running += 1 }
                    return running == 2
                }
                // Both dispatchers looked again meanwhile (every queue move wakes them): still two.
                try await Task.sleep(for: .milliseconds(300))
                var states: [JobStatus] = []
                for id in ids {
                    let fromA = try await a.job(id)
                    let fromB = try await b.job(id)
                    #expect(fromA.state == fromB.state)
                    #expect(fromA.position == fromB.position)
                    states.append(fromA)
                }
                #expect(states.filter { $0.state == .running }.map(\.id) == Array(ids.prefix(2)), "the first two, in the order they were created")
                #expect(states.filter { $0.state == .queued }.compactMap(\.position) == [1, 2, 3])
                #expect(a.invoker.pendingCount + b.invoker.pendingCount == 2, "two invocations in all")
            }
        }
    }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        for element in self { result.append(try await transform(element)) }
        return result
    }
}
