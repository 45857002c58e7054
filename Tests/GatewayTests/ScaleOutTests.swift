import AsyncHTTPClient
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
        // A grace of 8 s: under the whole suite's load (fifty gateways on one PostgreSQL) a janitor pass can
        // take seconds, and B's pass must record its client before A's decides; 3 s ran out once in CI.
        try await GatewayHarness.run(configure: { $0.chunkSize = 4096; $0.clientGrace = .seconds(8); $0.janitorInterval = .milliseconds(100) }) { a in
            try await GatewayHarness.run(sharingStoreOf: a) { b in
                let created = try await a.json(.POST, "/v1/jobs", #"{"function":"map-render","delivery":"stream"}"#).decode(JobCreated.self)
                // The client connects as soon as it has the job, as clients do (a job nobody ever read is
                // abandoned after the grace too, which under the suite's load could come first).
                var reader = try await EventStreamReader(b, jobId: created.id)
                let (event, _) = try await Self.invocation(a, b)
                _ = try await reader.read { $0.event == "started" }
                // Well past the grace, with A's janitor running every 100 ms: B's client keeps the job alive.
                let watchedUntil = ContinuousClock.now + .seconds(10)
                while ContinuousClock.now < watchedUntil {
                    let status = try await a.job(created.id)
                    #expect(status.state == .running, "\(status.state) \(String(describing: status.error))")
                    try await Task.sleep(for: .milliseconds(250))
                }
                #expect(event.jobId == created.id)
            }
        }
    }

    /// A stream finished on A, read through B at about 3 MB/s, long past its 1 s resume grace: B's
    /// janitor records its reader in the store, so A's janitor keeps the chunks until the reader is done.
    /// (Before: A deleted the chunk rows and B's stream closed bare after a few chunks.)
    @Test func aSlowReaderThroughAnotherInstanceFinishesItsStream() async throws {
        let cap = 256 << 10
        try await GatewayHarness.run(configure: {
            $0.chunkSize = cap
            $0.streamGrace = .seconds(1)
            // Well past the reader's presence reaching A through the store, even with the whole suite
            // running beside it on two cores (at 3 s the job was once taken for abandoned mid-upload).
            $0.clientGrace = .seconds(10)
            $0.janitorInterval = .milliseconds(100)
        }) { a in
            try await GatewayHarness.run(sharingStoreOf: a) { b in
                let created = try await a.json(.POST, "/v1/jobs", #"{"function":"map-render","delivery":"stream"}"#).decode(JobCreated.self)
                // The client is there from the start (a stream job nobody watches is cancelled), and reads slowly.
                let started = ContinuousClock.now
                var reader = try await EventStreamReader(b, jobId: created.id)
                let (event, invoker) = try await Self.invocation(a, b)
                let image = GatewayHarness.pattern(cap * 48, seed: 11)
                for index in 0..<48 {
                    let put = try await a.putChunk(event, index: index, bytes: a.chunk(image, index, size: cap))
                    #expect(put.status == 201, "\(put.text)")
                }
                #expect(try await a.complete(event, chunks: 48, bytes: image.count, sha256: ContentDigest(of: image).hex).status == 200)
                invoker.finish(event, .succeeded)
                var received: [UInt8] = []
                var last: ServerSentEvent?
                while let next = try await reader.next() {
                    last = next
                    if next.event == "chunk" {
                        received += next.chunkBytes
                        try await Task.sleep(for: .milliseconds(100))  // about 3.5 MB/s of base64
                    }
                    if next.event == "done" || next.event == "failed" { break }
                }
                #expect(ContinuousClock.now - started > .seconds(3), "the reader took longer than the grace")
                #expect(last?.event == "done", "\(last?.event ?? "nothing"): \(last?.data ?? "")")
                #expect(ContentDigest(of: received) == ContentDigest(of: image), "\(received.count) of \(image.count) bytes")
                #expect(last?.json["sha256"] as? String == ContentDigest(of: image).hex)
                // The reader gone, the chunks go after all, and a resume is told so.
                try await a.eventually("the finished stream's chunks to go", timeout: .seconds(20)) { try await a.keptSpool().isEmpty }
                #expect(try await a.request(.GET, "/v1/jobs/\(created.id)/events").errorCode == "stream_expired")
            }
        }
    }

    /// A cancel through B of an image A is sending: the transfer goes on to the last byte, the bytes stay
    /// while it runs, and go when it ends.
    @Test func aCancelDuringAnotherInstancesTransferWaitsForIt() async throws {
        let cap = 1 << 20
        try await GatewayHarness.run(configure: { $0.chunkSize = cap }) { a in
            try await GatewayHarness.run(sharingStoreOf: a) { b in
                let (created, image) = try await Self.readyImage(on: a, b, chunks: 24, cap: cap)
                let path = try #require(created.image)
                let transfer = SlowDownload(url: a.baseURL + path)
                try await transfer.start()
                try await transfer.read(atLeast: 2 << 20)  // A is sending; the client pauses
                #expect(try await b.request(.DELETE, "/v1/jobs/\(created.id)").status == 200)
                #expect(try await b.job(created.id).state == .cancelled)
                // Past a janitor pass of either instance (their sweeps included), the image is still kept.
                try await Task.sleep(for: .milliseconds(300))
                await a.gateway.janitorPass()
                await b.gateway.janitorPass()
                #expect(try await a.keptImages().count == 1, "the bytes under A's transfer were deleted")
                let whole = try await transfer.finish()
                #expect(whole.count == image.count)
                #expect(ContentDigest(of: whole) == ContentDigest(of: image))
                try await a.eventually("the cancelled image's bytes to go once the transfer ended") { try await a.keptImages().isEmpty }
                #expect(try await b.request(.GET, path).errorCode == "image_unavailable")
            }
        }
    }

    /// A transfer that outlasts its claim's first term (two 3 s leases) renews it: no other instance
    /// starts a second transfer meanwhile, and the key is consumed once.
    @Test func aTransferLongerThanItsClaimsFirstTermHoldsTheImage() async throws {
        let cap = 1 << 20
        // A lease of 3 s: a claim's first term is 6 s, half the transfer; a shorter lease lapsed under
        // load while the image was still being uploaded (the job was taken over: its chunks got 401).
        try await GatewayHarness.run(configure: { $0.chunkSize = cap; $0.lease = .seconds(3); $0.janitorInterval = .milliseconds(200) }) { a in
            try await GatewayHarness.run(sharingStoreOf: a) { b in
                let (created, image) = try await Self.readyImage(on: a, b, chunks: 24, cap: cap)
                let path = try #require(created.image)
                let transfer = SlowDownload(url: a.baseURL + path)
                try await transfer.start()
                let started = ContinuousClock.now
                var received = 0
                // About 2 MiB a second: ten seconds and more, past the claim's first term.
                while received < image.count - (4 << 20) {
                    received = try await transfer.read(atLeast: received + (256 << 10))
                    try await Task.sleep(for: .milliseconds(125))
                    if ContinuousClock.now - started > .seconds(6) {
                        let other = try await b.request(.GET, path)
                        #expect(other.status == 409, "B began a second transfer \(ContinuousClock.now - started) in")
                        #expect(other.errorCode == "image_in_flight")
                    }
                }
                #expect(ContinuousClock.now - started > .seconds(8))
                let whole = try await transfer.finish()
                #expect(ContentDigest(of: whole) == ContentDigest(of: image))
                try await a.eventually("the key to be consumed") { try await b.request(.HEAD, path).status == 410 }
            }
        }
    }

    /// A retrieve-mode image uploaded through either instance and completed.
    static func readyImage(on a: GatewayHarness, _ b: GatewayHarness, chunks: Int, cap: Int) async throws -> (JobCreated, [UInt8]) {
        let created = try await a.json(.POST, "/v1/jobs", #"{"function":"map-render","delivery":"retrieve"}"#).decode(JobCreated.self)
        let (event, invoker) = try await Self.invocation(a, b)
        let image = GatewayHarness.pattern(cap * chunks - 100, seed: 21)
        for index in 0..<chunks {
            let response = try await (index.isMultiple(of: 2) ? a : b).putChunk(event, index: index, bytes: a.chunk(image, index, size: cap))
            guard response.status == 201 else { throw TestFailure("chunk \(index): \(response.status)") }
        }
        let completed = try await b.complete(event, chunks: chunks, bytes: image.count, sha256: ContentDigest(of: image).hex)
        guard completed.status == 200 else { throw TestFailure("complete: \(completed.text)") }
        invoker.finish(event, .succeeded)
        return (created, image)
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

    /// One loaded machine holds up every instance on it: an instance whose own janitor was held up
    /// past half a lease does not take over a lapsed lease at once, but at its next pass, so that the
    /// instance held up with it can renew first. A punctual janitor takes over a lapsed lease at once.
    @Test func aJanitorThatWasHeldUpItselfJudgesOthersLeasesOnlyAtItsNextPass() async throws {
        // Janitors run once, at start: the test makes each pass itself. A lease of 6 s, so that a
        // renewed one outlives a loaded machine's pause between two statements.
        try await GatewayHarness.run(configure: { $0.chunkSize = 4096; $0.janitorInterval = .seconds(3600); $0.lease = .seconds(6) }) { a in
            try await GatewayHarness.run(sharingStoreOf: a) { b in
                let created = try await a.json(.POST, "/v1/jobs", #"{"function":"map-render"}"#).decode(JobCreated.self)
                let (first, invoker) = try await Self.invocation(a, b)
                let (owner, other) = invoker === a.invoker ? (a, b) : (b, a)
                let store = try #require(a.gateway.lifecycle.store as? PostgresJobStore)
                func lapse() async throws {
                    try await store.client.query(
                        "UPDATE chunkrelay_job SET lease_until = \(Date().timeIntervalSince1970 - 1) WHERE id = \(created.id)")
                }
                try await a.eventually("both janitors' passes at start") {
                    a.gateway.lifecycle.lastLeaseRenewal != nil && b.gateway.lifecycle.lastLeaseRenewal != nil
                }
                // Both janitors last passed at start, more than half a lease (3 s) ago: both were held up.
                try await Task.sleep(for: .milliseconds(3500))
                try await lapse()
                #expect(try await other.gateway.lifecycle.tendLeases() == 0, "held up itself: it judges the others' leases next pass")
                #expect(try await owner.gateway.lifecycle.tendLeases() == 0, "the owner, held up too, renews its own")
                #expect(try await other.gateway.lifecycle.tendLeases() == 0, "the renewed lease is alive")
                #expect(try await a.job(created.id).state == .running)
                #expect(a.invoker.pendingCount + b.invoker.pendingCount == 0, "no second attempt")

                // The owner stops renewing; the other's janitor, punctual now, takes the job over.
                try await lapse()
                // (A pass that finds itself late again, on a loaded machine, leaves it to the next.)
                var takenOver = 0
                for _ in 0..<3 where takenOver == 0 { takenOver = try await other.gateway.lifecycle.tendLeases() }
                #expect(takenOver == 1)
                let (second, _) = try await Self.invocation(a, b)
                #expect(second.jobId == created.id)
                #expect(second.attempt == first.attempt + 1)
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

/// A download read as slowly as the test says: the client's TCP takes only what the test has read, so
/// the server's transfer lasts as long as the test makes it.
final class SlowDownload: @unchecked Sendable {
    let url: String
    private var iterator: HTTPClientResponse.Body.AsyncIterator?
    private var received: [UInt8] = []

    init(url: String) { self.url = url }

    func start() async throws {
        let response = try await EventStreamReader.client.execute(HTTPClientRequest(url: url), deadline: .now() + .minutes(2))
        guard response.status == .ok else { throw TestFailure("GET answered \(response.status)") }
        iterator = response.body.makeAsyncIterator()
    }

    /// Reads until at least `count` bytes have arrived in all; returns how many have.
    @discardableResult
    func read(atLeast count: Int) async throws -> Int {
        while received.count < count {
            guard let part = try await iterator?.next() else { break }
            received += part.readableBytesView
        }
        return received.count
    }

    /// Reads the rest.
    func finish() async throws -> [UInt8] {
        try await read(atLeast: .max)
        return received
    }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        for element in self { result.append(try await transform(element)) }
        return result
    }
}
