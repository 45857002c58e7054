import AsyncHTTPClient
import Foundation
import NIOCore
import RelayProtocol
import TestSupport
import Testing

@testable import Gateway

@Suite(.timeLimit(.minutes(5))) struct RetrievalTests {
    static let large: @Sendable (inout GatewayConfiguration) -> Void = { $0.chunkSize = 4 << 20 }

    @Test func anImageIsServedOnceThenGone() async throws {
        try await GatewayHarness.run(configure: GatewayHarness.smallChunks) { h in
            let (created, image) = try await h.readyImage(bytes: 10_000)
            let path = try #require(created.image)
            let head = try await h.request(.HEAD, path)
            #expect(head.status == 200)
            #expect(head.headers["content-length"] == "10000")
            #expect(head.body.readableBytes == 0)
            #expect(head.headers["etag"] == "\"\(ContentDigest(of: image).hex)\"")

            let first = try await h.request(.GET, path)
            #expect(first.status == 200)
            #expect(first.headers["content-type"] == "image/png")
            #expect(first.headers["content-length"] == "10000")
            #expect(first.headers["etag"] == "\"\(ContentDigest(of: image).hex)\"")
            #expect(Array(first.body.readableBytesView) == image)

            let second = try await h.request(.GET, path)
            #expect(second.status == 410)
            #expect(second.errorCode == "image_consumed")
            #expect(try await h.request(.HEAD, path).status == 410)
            #expect(try await h.job(created.id).state == .done)
            // The file is gone from disk, not just hidden.
            #expect(try await h.keptImages().isEmpty)
        }
    }

    @Test func unknownAndNotYetReadyKeys() async throws {
        try await GatewayHarness.run(configure: GatewayHarness.smallChunks) { h in
            #expect(try await h.request(.GET, "/v1/images/\(RandomToken.make())").errorCode == "image_not_found")
            #expect(try await h.request(.GET, "/v1/images/short").status == 404)
            let (created, event) = try await h.createJob()
            let early = try await h.request(.GET, try #require(created.image))
            #expect(early.status == 409)
            #expect(early.errorCode == "image_not_ready")
            h.invoker.finish(event, .failed(JobError(code: "t", message: "t")))
        }
    }

    @Test func rangesAreServedAndIgnoredAsRFC9110Says() async throws {
        try await GatewayHarness.run(configure: GatewayHarness.smallChunks) { h in
            let (created, image) = try await h.readyImage(bytes: 10_000)
            let path = try #require(created.image)
            let middle = try await h.request(.GET, path, headers: [("Range", "bytes=100-199")])
            #expect(middle.status == 206)
            #expect(middle.headers["content-range"] == "bytes 100-199/10000")
            #expect(Array(middle.body.readableBytesView) == Array(image[100..<200]))
            let unsatisfiable = try await h.request(.GET, path, headers: [("Range", "bytes=20000-")])
            #expect(unsatisfiable.status == 416)
            #expect(unsatisfiable.headers["content-range"] == "bytes */10000")
            // Several ranges (not served here) or a malformed one: ignored, the whole image (RFC 9110 §14.2).
            for ignored in ["bytes=0-1,5-6", "bytes=4089-8494,-1", "items=0-1", "bytes=x-"] {
                let whole = try await h.request(.HEAD, path, headers: [("Range", ignored)])
                #expect(whole.status == 200, "\(ignored)")
                #expect(whole.headers["content-length"] == "10000", "\(ignored)")
            }
        }
    }

    /// A download manager fetches segments in any order (its last segment may finish first): the key is
    /// consumed only when the segments together delivered the whole image, never by one of them alone.
    @Test func rangesInAnyOrderConsumeTheKeyOnlyWhenTogetherTheyCoverTheImage() async throws {
        try await GatewayHarness.run(configure: GatewayHarness.smallChunks) { h in
            let (created, image) = try await h.readyImage(bytes: 10_000)
            let path = try #require(created.image)
            // The issue's case: the last 100 bytes, then the first 100, then the whole image: each is served.
            let tail = try await h.download(path, range: "bytes=-100")
            #expect(tail.status == 206)
            #expect(Array(tail.body.readableBytesView) == Array(image[9_900...]))
            #expect(try await h.request(.HEAD, path).status == 200, "the last bytes alone consumed the key")
            let head = try await h.download(path, range: "bytes=0-99")
            #expect(Array(head.body.readableBytesView) == Array(image[..<100]))
            #expect(try await h.request(.HEAD, path).status == 200, "two ranges with a gap consumed the key")
            // Segments that close the gap out of order: 5000-9899 first, then 100-4999.
            let later = try await h.download(path, range: "bytes=5000-9899")
            #expect(later.status == 206)
            #expect(try await h.request(.HEAD, path).status == 200)
            let last = try await h.download(path, range: "bytes=100-4999")
            #expect(last.status == 206)
            let reassembled = Array(head.body.readableBytesView) + Array(last.body.readableBytesView) + Array(later.body.readableBytesView)
                + Array(tail.body.readableBytesView)
            #expect(reassembled == image)
            try await h.eventually("the covered key to be consumed") { try await h.request(.HEAD, path).status == 410 }
            #expect(try await h.request(.GET, path).errorCode == "image_consumed")
            #expect(try await h.keptImages().isEmpty, "the consumed image's bytes are gone")
        }
    }

    @Test func aWholeTransferAfterRangesConsumesTheKey() async throws {
        try await GatewayHarness.run(configure: GatewayHarness.smallChunks) { h in
            let (created, image) = try await h.readyImage(bytes: 10_000)
            let path = try #require(created.image)
            #expect(try await h.download(path, range: "bytes=-100").status == 206)
            #expect(try await h.download(path, range: "bytes=0-99").status == 206)
            let whole = try await h.download(path)
            #expect(whole.status == 200)
            #expect(Array(whole.body.readableBytesView) == image)
            try await h.eventually("the key to be consumed") { try await h.request(.HEAD, path).status == 410 }
        }
    }

    @Test func ofConcurrentGETsExactlyOneGetsTheBody() async throws {
        try await GatewayHarness.run(configure: Self.large) { h in
            let (created, image) = try await h.readyImage(bytes: 24 << 20)
            let url = h.baseURL + (try #require(created.image))
            let results = try await withThrowingTaskGroup(of: (Int, [UInt8]).self) { group in
                for _ in 0..<6 {
                    group.addTask {
                        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(60))
                        var received: [UInt8] = []
                        for try await part in response.body { received += part.readableBytesView }
                        return (Int(response.status.code), received)
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let winners = results.filter { $0.0 == 200 }
            #expect(winners.count == 1)
            // The winner has the image itself, byte for byte (digests: a failed comparison of 24 MiB arrays
            // would have the test library diff them for minutes).
            #expect(winners.first.map { ContentDigest(of: $0.1) } == ContentDigest(of: image))
            #expect(results.allSatisfy { $0.0 == 200 || $0.0 == 409 || $0.0 == 410 })
            // The winner's client has every byte before the gateway records the retrieval (it waits for the
            // client's TCP to acknowledge them): until then a GET is 409, then 410 for good.
            try await eventually("the key to be consumed") {
                let after = try await h.request(.GET, url.replacingOccurrences(of: h.baseURL, with: ""))
                #expect(after.status == 410 || after.status == 409, "\(String(buffer: after.body))")
                return after.status == 410
            }
        }
    }

    @Test func aSecondGETWhileOneIsInFlightIs409() async throws {
        try await GatewayHarness.run(configure: Self.large) { h in
            let (created, image) = try await h.readyImage(bytes: 40 << 20)
            let path = try #require(created.image)
            let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: h.baseURL + path), timeout: .seconds(60))
            #expect(response.status == .ok)
            var iterator = response.body.makeAsyncIterator()
            var received = Array(try #require(try await iterator.next()).readableBytesView)
            // The first transfer is paused mid-way (socket buffers full): others are refused, HEAD still answers.
            let second = try await h.request(.GET, path)
            #expect(second.status == 409)
            #expect(second.errorCode == "image_in_flight")
            #expect(try await h.request(.HEAD, path).status == 200)
            while let part = try await iterator.next() { received += part.readableBytesView }
            #expect(received.count == image.count)
            #expect(ContentDigest(of: received) == ContentDigest(of: image), "the paused transfer delivers the image itself")
            try await h.eventually("the key to be consumed") { try await h.request(.HEAD, path).status == 410 }
        }
    }

    @Test func aBrokenTransferLeavesTheKeyAndCanResume() async throws {
        try await GatewayHarness.run(configure: Self.large) { h in
            let (created, image) = try await h.readyImage(bytes: 40 << 20)
            let path = try #require(created.image)
            // Read about 1 MiB, then drop the connection.
            let prefix: [UInt8] = try await {
                let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: h.baseURL + path), timeout: .seconds(60))
                var bytes: [UInt8] = []
                for try await part in response.body {
                    bytes += part.readableBytesView
                    if bytes.count >= 1 << 20 { break }
                }
                return bytes
            }()
            #expect(Array(image[0..<prefix.count]) == prefix)
            // Once the gateway notices the broken connection, the key is free again; resume from where it broke.
            let resumed = Locked<HTTPResult?>(nil)
            let offset = prefix.count
            try await h.eventually("the claim to be released") {
                let attempt = try await h.request(.GET, path, headers: [("Range", "bytes=\(offset)-")])
                if attempt.status == 409 { return false }
                resumed.update { $0 = attempt }
                return true
            }
            let rest = try #require(resumed.value)
            #expect(rest.status == 206)
            #expect(prefix + Array(rest.body.readableBytesView) == image)
            #expect(try await h.request(.GET, path).status == 410)
        }
    }

    @Test func unclaimedImagesExpireAndTheirFilesGo() async throws {
        try await GatewayHarness.run(configure: { $0.chunkSize = 4096; $0.imageTTL = .seconds(60) }) { h in
            let (created, _) = try await h.readyImage(bytes: 5000)
            #expect(try await h.keptImages().count == 1)
            await h.gateway.sweepExpiredImages(now: Date().timeIntervalSince1970 + 30)
            #expect(try await h.job(created.id).state == .ready)
            await h.gateway.sweepExpiredImages(now: Date().timeIntervalSince1970 + 61)
            #expect(try await h.job(created.id).state == .expired)
            let response = try await h.request(.GET, try #require(created.image))
            #expect(response.status == 410)
            #expect(response.errorCode == "image_expired")
            #expect(try await h.keptImages().isEmpty)
        }
    }

    @Test func theJanitorRunsOnItsOwn() async throws {
        try await GatewayHarness.run(configure: { $0.chunkSize = 4096; $0.imageTTL = .seconds(1); $0.janitorInterval = .milliseconds(100) }) { h in
            let (created, _) = try await h.readyImage(bytes: 5000)
            try await h.eventually("the image to expire", timeout: .seconds(10)) { try await h.job(created.id).state == .expired }
        }
    }
}

@Suite(.timeLimit(.minutes(5))) struct RecoveryTests {
    @Test func runningJobsGoBackToTheFrontAfterARestart() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gw-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let ids = Locked<[String]>([])
        let oldToken = Locked("")
        try await GatewayHarness.run(configure: { $0.maxConcurrency = 1; $0.chunkSize = 4096 }, stateDirectory: directory) { h in
            let (first, event) = try await h.createJob()
            oldToken.update { $0 = event.uploadToken }
            var created = [first.id]
            for _ in 0..<2 { created.append(try await h.json(.POST, "/v1/jobs", #"{"function":"map-render"}"#).decode(JobCreated.self).id) }
            ids.update { $0 = created }
            #expect(try await h.putChunk(event, index: 0, bytes: [1, 2, 3]).status == 201)
            // The server stops with the first job still running (the invocation is cancelled).
        }
        let capturedIDs = ids.value
        let capturedToken = oldToken.value
        try await GatewayHarness.run(configure: { $0.maxConcurrency = 1; $0.chunkSize = 4096 }, stateDirectory: directory) { h in
            let event = try await h.invoker.nextEvent()
            #expect(event.jobId == capturedIDs[0])
            #expect(event.attempt == 2)
            #expect(event.uploadToken != capturedToken)
            let (first, second, third) = (try await h.job(capturedIDs[0]), try await h.job(capturedIDs[1]), try await h.job(capturedIDs[2]))
            #expect(first.chunks == 0)
            #expect(second.position == 1)
            #expect(third.position == 2)
            var stale = event
            stale.uploadToken = capturedToken
            #expect(try await h.putChunk(stale, index: 0, bytes: [1, 2, 3]).status == 401)
            h.invoker.finish(event, .failed(JobError(code: "t", message: "t")))
            let next = try await h.invoker.nextEvent()
            h.invoker.finish(next, .failed(JobError(code: "t", message: "t")))
            let last = try await h.invoker.nextEvent()
            h.invoker.finish(last, .failed(JobError(code: "t", message: "t")))
        }
    }
}
