import Foundation
import RelayProtocol
import TestSupport
import Testing

@testable import Gateway

/// A full disk and a store that refuses writes: answers (507 / 503 with `Retry-After`), never a 500;
/// jobs end, never left running; and the gateway takes work again by itself once storage is back.
/// The SQLite cases run on a real small file system (a tmpfs the test mounts: root, as CI runs).
@Suite struct StorageTests {
    static let cap = 64 << 10

    static func onSmallDisk(megabytes: Int, minFreeSpace: Int64, _ body: @Sendable (GatewayHarness, SmallDisk) async throws -> Void) async throws {
        try await SmallDisk.with(megabytes: megabytes) { disk in
            try await GatewayHarness.run(
                configure: {
                    $0.chunkSize = cap
                    $0.minFreeSpace = minFreeSpace
                    $0.storageReserve = 1 << 20
                    $0.janitorInterval = .milliseconds(100)
                },
                stateDirectory: disk.url.appendingPathComponent("state")
            ) { gateway in
                try await body(gateway, disk)
            }
        }
    }

    static func gauge(_ name: String, in gateway: GatewayHarness) async throws -> Int? {
        let text = try await gateway.request(.GET, "/metrics").text
        return text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Int($0.split(separator: " ").last ?? "") }
    }

    @Test(.enabled(if: GatewayHarness.usesSQLite && SmallDisk.available))
    func underTheLowWaterMarkNewWorkIs507AndTheAttemptFailsStorageFullThenWorkResumes() async throws {
        try await Self.onSmallDisk(megabytes: 16, minFreeSpace: 4 << 20) { gateway, disk in
            let (created, event) = try await gateway.createJob()
            let image = GatewayHarness.pattern(3 * Self.cap, seed: 3)
            #expect(try await gateway.putChunk(event, index: 0, bytes: gateway.chunk(image, 0, size: Self.cap)).status == 201)
            #expect(try await gateway.request(.GET, "/healthz").status == 200)

            let filler = try disk.fill(leaving: 2 << 20)
            let health = try await gateway.request(.GET, "/healthz")
            #expect(health.status == 503)
            #expect(health.errorCode == "insufficient_storage")
            #expect(health.headers["retry-after"] != nil)
            #expect(try await Self.gauge("chunkrelay_storage_short", in: gateway) == 1)
            let free = try #require(try await Self.gauge("chunkrelay_state_free_bytes", in: gateway))
            #expect(free < 4 << 20)

            let refused = try await gateway.putChunk(event, index: 1, bytes: gateway.chunk(image, 1, size: Self.cap))
            #expect(refused.status == 507)
            #expect(refused.errorCode == "insufficient_storage")
            #expect(refused.headers["retry-after"] != nil)
            let another = try await gateway.json(.POST, "/v1/jobs", #"{"function":"map-render"}"#)
            #expect(another.status == 507)
            #expect(another.errorCode == "insufficient_storage")

            // The function gives up, as FunctionKit does after its retries: the job fails of the refusal.
            gateway.invoker.finish(event, .failed(JobError(code: "UploadError", message: "gateway answered 507")))
            try await gateway.eventually("the job to fail") { try await gateway.job(created.id).state == .failed }
            #expect(try await gateway.job(created.id).error?.code == "storage_full")
            #expect(try await gateway.keptSpool().isEmpty)

            // Space comes back (the user deletes files): no restart, the next job runs to a verified image.
            try FileManager.default.removeItem(at: filler)
            try await gateway.eventually("the gateway to take work again") { try await gateway.request(.GET, "/healthz").status == 200 }
            let (next, whole) = try await gateway.readyImage(bytes: 5 * Self.cap / 2, seed: 4)
            let fetched = try await gateway.download(try #require(next.image))
            #expect(fetched.status == 200)
            #expect(ContentDigest(of: Array(fetched.body.readableBytesView)) == ContentDigest(of: whole))
        }
    }

    @Test(.enabled(if: GatewayHarness.usesSQLite && SmallDisk.available))
    func aWriteThatHitsAFullDiskIs507TheReserveLetsTheFailureBeRecordedAndTheReserveComesBack() async throws {
        // No low-water mark: the disk is met full at the write itself.
        try await Self.onSmallDisk(megabytes: 8, minFreeSpace: 0) { gateway, disk in
            let (created, event) = try await gateway.createJob()
            let image = GatewayHarness.pattern(3 * Self.cap, seed: 5)
            #expect(try await gateway.putChunk(event, index: 0, bytes: gateway.chunk(image, 0, size: Self.cap)).status == 201)
            #expect(try await Self.gauge("chunkrelay_storage_reserve_bytes", in: gateway) == 1 << 20)

            let filler = try disk.fill()
            var answers: [Int] = []
            for index in 1..<3 {
                let response = try await gateway.putChunk(event, index: index, bytes: gateway.chunk(image, index, size: Self.cap))
                answers.append(response.status)
                if response.status == 507 { #expect(response.errorCode == "insufficient_storage") }
            }
            #expect(answers.allSatisfy { $0 == 507 }, "answers \(answers)")
            // The write that hit the full disk gave the reserve up for the writes that free space.
            #expect(try await Self.gauge("chunkrelay_storage_reserve_bytes", in: gateway) == 0)
            #expect(try await gateway.request(.GET, "/healthz").status == 503)

            gateway.invoker.finish(event, .failed(JobError(code: "UploadError", message: "gateway answered 507")))
            try await gateway.eventually("the job to fail") { try await gateway.job(created.id).state == .failed }
            #expect(try await gateway.job(created.id).error?.code == "storage_full")
            #expect(try await gateway.keptSpool().isEmpty)

            try FileManager.default.removeItem(at: filler)
            try await gateway.eventually("the reserve to be made again") {
                try await Self.gauge("chunkrelay_storage_reserve_bytes", in: gateway) == 1 << 20
            }
            #expect(try await gateway.request(.GET, "/healthz").status == 200)
            let (next, whole) = try await gateway.readyImage(bytes: 2 * Self.cap, seed: 6)
            let fetched = try await gateway.download(try #require(next.image))
            #expect(ContentDigest(of: Array(fetched.body.readableBytesView)) == ContentDigest(of: whole))
        }
    }

    @Test(.enabled(if: GatewayHarness.usesSQLite && SmallDisk.available))
    func jobsWaitInTheQueueWhileStorageIsShortAndStartWhenItIsBack() async throws {
        try await Self.onSmallDisk(megabytes: 16, minFreeSpace: 4 << 20) { gateway, disk in
            let retrieve = #"{"function":"map-render","delivery":"retrieve"}"#
            let (first, firstEvent) = try await gateway.createJob()
            let second = try await gateway.json(.POST, "/v1/jobs", retrieve).decode(JobCreated.self)
            let secondEvent = try await gateway.invoker.nextEvent()
            // The harness runs two at once: the third waits in the queue.
            let third = try await gateway.json(.POST, "/v1/jobs", retrieve).decode(JobCreated.self)
            let filler = try disk.fill(leaving: 2 << 20)
            gateway.invoker.finish(firstEvent, .failed(JobError(code: "Unhandled", message: "no")))
            gateway.invoker.finish(secondEvent, .failed(JobError(code: "Unhandled", message: "no")))
            try await gateway.eventually("both to fail") {
                let states = [try await gateway.job(first.id).state, try await gateway.job(second.id).state]
                return states == [.failed, .failed]
            }
            // Failed without a refused upload: the function's own error stays.
            #expect(try await gateway.job(first.id).error?.code == "Unhandled")
            // Several janitor passes (each would wake the dispatcher): no room, so the third is not started.
            try await Task.sleep(for: .milliseconds(600))
            #expect(gateway.invoker.pendingCount == 0)
            #expect(try await gateway.job(third.id).state == .queued)

            try FileManager.default.removeItem(at: filler)
            let thirdEvent = try await gateway.invoker.nextEvent()
            #expect(thirdEvent.jobId == third.id)
            let image = GatewayHarness.pattern(Self.cap + 10, seed: 7)
            try await gateway.uploadImage(image, for: thirdEvent)
            #expect(try await gateway.job(third.id).state == .ready)
        }
    }

    /// The PostgreSQL store refusing writes (as a standby, or a database set read-only, does: SQLSTATE
    /// 25006), here with triggers on this test's schema so that the tests beside it are not touched.
    @Test(.enabled(if: !GatewayHarness.usesSQLite))
    func aStoreThatRefusesWritesForAWhileLeavesEveryJobFinished() async throws {
        try await GatewayHarness.run(configure: { $0.chunkSize = Self.cap; $0.janitorInterval = .milliseconds(100) }) { gateway in
            let (running, event) = try await gateway.createJob()
            let (ready, image) = try await gateway.readyImage(bytes: 2 * Self.cap, seed: 8)
            #expect(try await gateway.putChunk(event, index: 0, bytes: GatewayHarness.pattern(Self.cap, seed: 9)).status == 201)

            let tables = ["chunkrelay_job", "chunkrelay_chunk", "chunkrelay_chunk_data", "chunkrelay_presence"]
            try await gateway.administer(
                [
                    """
                    CREATE FUNCTION SCHEMA.refuse_writes() RETURNS trigger LANGUAGE plpgsql AS $$
                    BEGIN RAISE EXCEPTION 'cannot execute % in a read-only transaction', TG_OP USING ERRCODE = 'read_only_sql_transaction'; END $$
                    """
                ]
                    + tables.map {
                        "CREATE TRIGGER refuse BEFORE INSERT OR UPDATE OR DELETE ON SCHEMA.\($0) FOR EACH STATEMENT EXECUTE FUNCTION SCHEMA.refuse_writes()"
                    })
            let created = try await gateway.json(.POST, "/v1/jobs", #"{"function":"map-render"}"#)
            #expect(created.status == 503)
            #expect(created.errorCode == "store_unavailable")
            #expect(created.headers["retry-after"] != nil)
            let chunk = try await gateway.putChunk(event, index: 1, bytes: GatewayHarness.pattern(Self.cap, seed: 10))
            #expect(chunk.status == 503)
            #expect(chunk.errorCode == "store_unavailable")
            #expect(try await gateway.request(.GET, "/healthz").status == 503)
            // Reads still work: the job is where it was, not half-moved.
            #expect(try await gateway.job(running.id).state == .running)
            #expect(try await gateway.job(ready.id).state == .ready)

            // The function fails while nothing can be written: the failure waits for the ledger.
            gateway.invoker.finish(event, .failed(JobError(code: "Unhandled", message: "gave up")))
            try await gateway.eventually("the failure to wait for the ledger") {
                try await Self.gauge("chunkrelay_unrecorded_outcomes", in: gateway) == 1
            }
            #expect(try await gateway.job(running.id).state == .running)

            try await gateway.administer(tables.map { "DROP TRIGGER refuse ON SCHEMA.\($0)" })
            try await gateway.eventually("the failure to be recorded") { try await gateway.job(running.id).state == .failed }
            #expect(try await gateway.job(running.id).error?.code == "Unhandled")
            try await gateway.eventually("the gateway to take work again") { try await gateway.request(.GET, "/healthz").status == 200 }
            let fetched = try await gateway.download(try #require(ready.image))
            #expect(ContentDigest(of: Array(fetched.body.readableBytesView)) == ContentDigest(of: image))
            _ = try await gateway.readyImage(bytes: Self.cap, seed: 11)
        }
    }
}
