import Foundation
import NIOCore
import RelayProtocol
import TestSupport
import Testing

@testable import Gateway

/// Clients that vanish at the socket level (a reset before the response head, partway through the
/// body, right after connecting to a stream) and cancels at any moment of dispatch: nothing they held
/// stays held, and the promise "handed out once, nothing lost" still stands.
@Suite(.timeLimit(.minutes(3))) struct AbandonedClientTests {
    static func port(_ h: GatewayHarness) -> Int { Int(h.baseURL.split(separator: ":").last ?? "") ?? 0 }

    @Test func twentyGETsResetBeforeTheHeadOrMidBodyLeaveEveryKeyRetrievableOnce() async throws {
        try await GatewayHarness.run(configure: { $0.chunkSize = 1 << 20 }) { h in
            var images: [(path: String, bytes: [UInt8])] = []
            for seed in 1...20 {
                // 3 MiB: far more than the client's 64 KiB receive buffer, so a reader that stops early has
                // not had the image acknowledged on its behalf.
                let (created, image) = try await h.readyImage(bytes: 3 << 20, seed: UInt8(seed))
                images.append((try #require(created.image), image))
            }
            for (number, image) in images.enumerated() {
                let client = try RawClient(port: Self.port(h))
                client.sendGET(image.path)
                if number.isMultiple(of: 2) {
                    // Mid-body: the head and some of the image arrived.
                    #expect(await client.read(atLeast: 256 << 10).count >= 256 << 10)
                }
                client.reset()
            }
            for image in images {
                // The gateway may not have seen the reset yet (409 for a moment); then the key must give the
                // whole image once, and 410 after.
                try await eventually("\(image.path) to be retrievable after the reset") {
                    let response = try await h.request(.GET, image.path)
                    guard response.status != 409 else { return false }
                    #expect(response.status == 200, "\(response.text.prefix(200))")
                    // Digests, not the arrays: a failed comparison of megabytes would have the test library diff them for hours.
                    #expect(response.body.readableBytes == image.bytes.count)
                    #expect(ContentDigest(of: Array(response.body.readableBytesView)) == ContentDigest(of: image.bytes))
                    return true
                }
                let again = try await h.request(.GET, image.path)
                #expect(again.status == 410)
                #expect(again.errorCode == "image_consumed")
            }
            #expect(h.gateway.lifecycle.gauges.claims == 0, "no claim is left held")
        }
    }

    /// A client that takes the head, stops reading and resets while the rest of a small image sits in
    /// the gateway's send buffer: the gateway had handed every byte to the kernel, which then drops the
    /// unacknowledged ones with the reset. Its counters then show nothing unacknowledged; the key must
    /// still not be taken for delivered.
    @Test func aResetWhileTheImageSitsInTheSendBufferIsNotDelivery() async throws {
        try await GatewayHarness.run(configure: { $0.chunkSize = 1 << 20 }) { h in
            for seed in 1...6 {
                let (created, image) = try await h.readyImage(bytes: 192 << 10, seed: UInt8(seed))
                let path = try #require(created.image)
                let client = try RawClient(port: Self.port(h), receiveBuffer: 4 << 10)
                client.sendGET(path)
                #expect(await client.read(atLeast: 1024).count >= 1024)
                // Long enough for the whole body to leave the gateway's writer for the kernel.
                try await Task.sleep(for: .milliseconds(100 * seed))
                client.reset()
                try await eventually("\(path) to be retrievable after the reset") {
                    let response = try await h.request(.GET, path)
                    guard response.status != 409 else { return false }
                    #expect(response.status == 200, "\(response.status) \(response.text.prefix(200))")
                    #expect(ContentDigest(of: Array(response.body.readableBytesView)) == ContentDigest(of: image))
                    return true
                }
            }
            // The last transfer lets go once its client's TCP has acknowledged the whole image.
            try await eventually("no claim to be left held") { h.gateway.lifecycle.gauges.claims == 0 }
        }
    }

    @Test(arguments: [false, true])
    func aStreamWhoseOnlyClientResetsIsCancelledWithinItsGrace(readFirst: Bool) async throws {
        // Heartbeats an hour apart and a function that never returns: a reset noticed only at the next
        // write would leave the job running for good, so its cancellation shows the reset was noticed as
        // the connection closed.
        try await GatewayHarness.run(configure: {
            $0.clientGrace = .seconds(5)
            $0.janitorInterval = .milliseconds(100)
            $0.heartbeatInterval = .seconds(3600)
        }) { h in
            let created = try await h.json(.POST, "/v1/jobs", #"{"function":"map-render","delivery":"stream"}"#).decode(JobCreated.self)
            // A first client watches from the start, so the job is invoked however long dispatch takes
            // on a loaded machine (the PostgreSQL pass once took more than the grace: a queued stream job
            // nobody watched was cancelled before it ran, and this test never reached its point).
            let keeper = try RawClient(port: Self.port(h))
            keeper.sendGET(created.events)
            #expect(await keeper.read(atLeast: 20, timeout: .seconds(60)).count >= 20)
            let event = try await h.invocation(of: created)
            let client = try RawClient(port: Self.port(h))
            client.sendGET(created.events)
            if readFirst { #expect(await client.read(atLeast: 20, timeout: .seconds(60)).count >= 20) }  // reset mid-stream
            keeper.reset()
            client.reset()
            try await eventually("the abandoned stream job to be cancelled", within: .seconds(120)) {
                try await h.job(created.id).state == .cancelled
            }
            let status = try await h.job(created.id)
            #expect(status.error?.code == "client_gone")
            try await eventually("the invocation to be stopped") { h.invoker.wasCancelled(event) }
            #expect(h.gateway.lifecycle.feed.subscriberCount == 0)
        }
    }

    @Test func aDELETEAtAnyMomentOfDispatchStopsTheInvocation() async throws {
        try await GatewayHarness.run(configure: { $0.maxConcurrency = 2 }) { h in
            var ids: [String] = []
            for round in 0..<40 {
                let created = try await h.json(.POST, "/v1/jobs", #"{"function":"map-render","params":{},"delivery":"retrieve"}"#).decode(JobCreated.self)
                ids.append(created.id)
                // From "not dispatched yet" through "dispatching" to "invoked": a spread of moments.
                if round % 4 == 1 { await Task.yield() }
                if round % 4 == 2 { try await Task.sleep(for: .microseconds(200 * (round % 7))) }
                if round % 4 == 3 { try await Task.sleep(for: .milliseconds(round % 5)) }
                let deleted = try await h.request(.DELETE, "/v1/jobs/\(created.id)")
                #expect(deleted.status == 200, "\(deleted.text)")
            }
            for id in ids { #expect(try await h.job(id).state == .cancelled) }
            // Every invocation that began was stopped; none is left running to hold a slot.
            try await eventually("every started invocation to be cancelled") {
                h.invoker.cancelledCount == h.invoker.invocationCount
            }
            try await eventually("no attempt to hold a cancellation scope") { h.gateway.lifecycle.cancellations.count == 0 }
            // The slots are free: a new job is invoked.
            let created = try await h.json(.POST, "/v1/jobs", #"{"function":"map-render","params":{},"delivery":"retrieve"}"#).decode(JobCreated.self)
            let invoker = h.invoker
            // Earlier invocations (all cancelled) are still in the fake's record; skip to this job's.
            let event = try await withDeadline(.seconds(10), "the new job to be invoked") {
                var event = try await invoker.nextEvent()
                while event.jobId != created.id { event = try await invoker.nextEvent() }
                return event
            }
            #expect(event.attempt == 1)
            h.invoker.finish(event, .succeeded)
        }
    }
}
