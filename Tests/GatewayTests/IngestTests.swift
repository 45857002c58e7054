import AsyncHTTPClient
import Foundation
import NIOCore
import RelayProtocol
import TestSupport
import Testing

@testable import Gateway

@Suite(.timeLimit(.minutes(5))) struct IngestTests {
    @Test func chunksMayArriveOutOfOrderAndAreReassembled() async throws {
        try await GatewayHarness.run(configure: GatewayHarness.smallChunks) { h in
            let image = GatewayHarness.pattern(4096 * 3 + 100, seed: 3)
            let (created, event) = try await h.createJob()
            try await h.uploadImage(image, for: event, order: [3, 1, 0, 2])
            let status = try await h.job(created.id)
            #expect(status.state == .ready)
            #expect(status.chunks == 4 && status.bytes == Int64(image.count))
            #expect(status.sha256 == ContentDigest(of: image).hex)
            let fetched = try await h.request(.GET, try #require(created.image))
            #expect(fetched.status == 200)
            #expect(Array(fetched.body.readableBytesView) == image)
        }
    }

    /// A renderer that is not deterministic, retrying a chunk while its first try is still in flight:
    /// two bodies for one index at the same moment, each with a valid digest. The ledger gives the index
    /// to one of them before any byte is written; the other gets 409 and writes nothing, so the image
    /// served is the one whose digest `complete` verified, in every round.
    @Test func concurrentConflictingUploadsOfOneIndexServeTheLedgersBytes() async throws {
        let cap = 64 << 10
        let chunks = 16
        try await GatewayHarness.run(configure: { $0.chunkSize = cap }) { h in
            for round in 0..<12 {
                let (created, event) = try await h.createJob()
                let bodies = (0..<chunks).map { index in
                    (0..<2).map { GatewayHarness.pattern(cap, seed: UInt8(truncatingIfNeeded: round * 64 + index * 2 + $0)) }
                }
                let statuses = try await withThrowingTaskGroup(of: (Int, Int, Int).self) { group in
                    for index in 0..<chunks {
                        for variant in 0..<2 {
                            group.addTask { (index, variant, try await h.putChunk(event, index: index, bytes: bodies[index][variant]).status) }
                        }
                    }
                    var statuses = [[Int]](repeating: [0, 0], count: chunks)
                    for try await (index, variant, status) in group { statuses[index][variant] = status }
                    return statuses
                }
                var image: [UInt8] = []
                for index in 0..<chunks {
                    #expect(statuses[index].sorted() == [201, 409], "round \(round), chunk \(index): \(statuses[index])")
                    image += bodies[index][statuses[index][0] == 201 ? 0 : 1]
                }
                let completed = try await h.complete(event, chunks: chunks, bytes: image.count, sha256: ContentDigest(of: image).hex)
                #expect(completed.status == 200, "round \(round): \(completed.text)")
                h.invoker.finish(event, .succeeded)
                let fetched = try await h.request(.GET, try #require(created.image))
                #expect(fetched.status == 200)
                #expect(ContentDigest(of: Array(fetched.body.readableBytesView)) == ContentDigest(of: image), "round \(round): the bytes served are not the bytes verified")
            }
        }
    }

    /// The whole-image digest is hashed as chunks arrive; chunks ahead of a gap wait in memory up to two
    /// caps, the rest are read back at `complete`. Uploaded backwards, all three paths meet in one image,
    /// and a wrong declared digest is still caught by what they computed.
    @Test func anImageUploadedBackwardsIsVerifiedFromMemoryAndReadBack() async throws {
        try await GatewayHarness.run(configure: GatewayHarness.smallChunks) { h in
            let image = GatewayHarness.pattern(4096 * 8, seed: 5)
            let (created, event) = try await h.createJob()
            for index in (0..<8).reversed() {
                let chunk = Array(image[(index * 4096)..<((index + 1) * 4096)])
                let response = try await h.putChunk(event, index: index, bytes: chunk)
                #expect(response.status == 201)
            }
            let wrong = try await h.complete(event, chunks: 8, bytes: image.count, sha256: ContentDigest(of: Array(image.reversed())).hex)
            #expect(wrong.status == 422)
            #expect(wrong.text.contains("digest_mismatch"))
            let right = try await h.complete(event, chunks: 8, bytes: image.count, sha256: ContentDigest(of: image).hex)
            #expect(right.status == 200)
            h.invoker.finish(event, .succeeded)
            let fetched = try await h.request(.GET, try #require(created.image))
            #expect(fetched.status == 200)
            #expect(ContentDigest(of: Array(fetched.body.readableBytesView)) == ContentDigest(of: image))
        }
    }

    @Test func uploadsNeedTheAttemptToken() async throws {
        try await GatewayHarness.run(configure: GatewayHarness.smallChunks) { h in
            let (created, event) = try await h.createJob()
            let chunk = GatewayHarness.pattern(100, seed: 1)
            let missing = try await h.request(.PUT, "/v1/jobs/\(event.jobId)/chunks/0", headers: [("Content-Digest", ContentDigest(of: chunk).headerValue)], body: ByteBuffer(bytes: chunk))
            #expect(missing.status == 401)
            #expect(missing.errorCode == "invalid_token")
            #expect(missing.headers["www-authenticate"] == "Bearer")
            let wrong = try await h.putChunk(event, index: 0, bytes: chunk, token: RandomToken.make())
            #expect(wrong.status == 401)
            let wrongComplete = try await h.request(.POST, "/v1/jobs/\(event.jobId)/complete", headers: [("Authorization", "Bearer nope")], body: ByteBuffer(string: "{}"))
            #expect(wrongComplete.status == 401)
            #expect(try await h.job(created.id).chunks == 0)
            h.invoker.finish(event, .failed(JobError(code: "t", message: "t")))
        }
    }

    @Test func oversizedChunksAreRefusedBeforeBeingReadWhole() async throws {
        try await GatewayHarness.run(configure: GatewayHarness.smallChunks) { h in
            let (created, event) = try await h.createJob()
            // Declared too large.
            let big = GatewayHarness.pattern(4097, seed: 1)
            let declared = try await h.putChunk(event, index: 0, bytes: big)
            #expect(declared.status == 413)
            #expect(declared.errorCode == "chunk_too_large")

            // No Content-Length (chunked transfer encoding): refused once it grows past the cap.
            var request = HTTPClientRequest(url: "\(h.baseURL)/v1/jobs/\(event.jobId)/chunks/0")
            request.method = .PUT
            request.headers.add(name: "Authorization", value: "Bearer \(event.uploadToken)")
            request.headers.add(name: "Content-Digest", value: ContentDigest(of: big).headerValue)
            let parts = stride(from: 0, to: big.count, by: 1000).map { ByteBuffer(bytes: big[$0..<min(big.count, $0 + 1000)]) }
            request.body = .stream(parts.async, length: .unknown)
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
            #expect(response.status.code == 413)
            _ = try await response.body.collect(upTo: 1 << 20)
            #expect(try await h.job(created.id).chunks == 0)

            // Exactly the cap is fine.
            #expect(try await h.putChunk(event, index: 0, bytes: Array(big[0..<4096])).status == 201)
            h.invoker.finish(event, .failed(JobError(code: "t", message: "t")))
        }
    }

    @Test func aDigestMismatchStoresNothing() async throws {
        try await GatewayHarness.run(configure: GatewayHarness.smallChunks) { h in
            let (created, event) = try await h.createJob()
            let chunk = GatewayHarness.pattern(4096, seed: 5)
            let other = ContentDigest(of: GatewayHarness.pattern(4096, seed: 6)).headerValue
            let response = try await h.putChunk(event, index: 0, bytes: chunk, digest: other)
            #expect(response.status == 422)
            #expect(response.errorCode == "digest_mismatch")
            let status = try await h.job(created.id)
            #expect(status.chunks == 0 && status.bytes == 0)
            // The same index with the right digest is then accepted as new.
            #expect(try await h.putChunk(event, index: 0, bytes: chunk).status == 201)
            h.invoker.finish(event, .failed(JobError(code: "t", message: "t")))
        }
    }

    @Test func missingOrMalformedDigestIsA400() async throws {
        try await GatewayHarness.run(configure: GatewayHarness.smallChunks) { h in
            let (_, event) = try await h.createJob()
            let chunk = ByteBuffer(bytes: GatewayHarness.pattern(10, seed: 1))
            let none = try await h.request(.PUT, "/v1/jobs/\(event.jobId)/chunks/0", headers: [("Authorization", "Bearer \(event.uploadToken)")], body: chunk)
            #expect(none.status == 400 && none.errorCode == "missing_digest")
            let malformed = try await h.request(.PUT, "/v1/jobs/\(event.jobId)/chunks/0", headers: [("Authorization", "Bearer \(event.uploadToken)"), ("Content-Digest", "md5=:AAAA:")], body: chunk)
            #expect(malformed.status == 400 && malformed.errorCode == "invalid_digest")
            for index in ["-1", "01", "x", "99999999999"] {
                let bad = try await h.request(.PUT, "/v1/jobs/\(event.jobId)/chunks/\(index)", headers: [("Authorization", "Bearer \(event.uploadToken)"), ("Content-Digest", ContentDigest(of: chunk.readableBytesView).headerValue)], body: chunk)
                #expect(bad.status == 400, "\(index)")
                #expect(bad.errorCode == "invalid_index", "\(index)")
            }
            h.invoker.finish(event, .failed(JobError(code: "t", message: "t")))
        }
    }

    @Test func retriesAreIdempotentAndConflictsRefused() async throws {
        try await GatewayHarness.run(configure: GatewayHarness.smallChunks) { h in
            let image = GatewayHarness.pattern(4096 + 10, seed: 8)
            let (created, event) = try await h.createJob()
            let first = Array(image[0..<4096])
            #expect(try await h.putChunk(event, index: 0, bytes: first).status == 201)
            let again = try await h.putChunk(event, index: 0, bytes: first)
            #expect(again.status == 200)
            #expect(try again.decode(ChunkAccepted.self).stored == false)
            let impostor = GatewayHarness.pattern(4096, seed: 9)
            let conflict = try await h.putChunk(event, index: 0, bytes: impostor)
            #expect(conflict.status == 409)
            #expect(conflict.errorCode == "chunk_conflict")
            // The stored chunk is untouched: the image completes with the original bytes.
            #expect(try await h.putChunk(event, index: 1, bytes: Array(image[4096...])).status == 201)
            let completed = try await h.complete(event, chunks: 2, bytes: image.count, sha256: ContentDigest(of: image).hex)
            #expect(completed.status == 200)
            let fetched = try await h.request(.GET, try #require(created.image))
            #expect(Array(fetched.body.readableBytesView) == image)
            h.invoker.finish(event, .succeeded)
        }
    }

    @Test func completeVerifiesCountSizeAndDigest() async throws {
        try await GatewayHarness.run(configure: GatewayHarness.smallChunks) { h in
            let image = GatewayHarness.pattern(4096 * 2 + 7, seed: 4)
            let (created, event) = try await h.createJob()
            let sha = ContentDigest(of: image).hex
            #expect(try await h.putChunk(event, index: 0, bytes: Array(image[0..<4096])).status == 201)
            #expect(try await h.putChunk(event, index: 2, bytes: Array(image[8192...])).status == 201)

            let missing = try await h.complete(event, chunks: 3, bytes: image.count, sha256: sha)
            #expect(missing.status == 422 && missing.errorCode == "incomplete")

            // Only the last chunk may be short.
            let short = try await h.putChunk(event, index: 1, bytes: Array(image[4096..<5000]))
            #expect(short.status == 422 && short.errorCode == "short_chunk")
            #expect(try await h.putChunk(event, index: 1, bytes: Array(image[4096..<8192])).status == 201)

            let wrongSize = try await h.complete(event, chunks: 3, bytes: image.count + 1, sha256: sha)
            #expect(wrongSize.status == 422 && wrongSize.errorCode == "size_mismatch")
            let wrongDigest = try await h.complete(event, chunks: 3, bytes: image.count, sha256: ContentDigest(of: [1, 2, 3]).hex)
            #expect(wrongDigest.status == 422 && wrongDigest.errorCode == "digest_mismatch")
            let badManifest = try await h.complete(event, chunks: 3, bytes: image.count, sha256: "xyz")
            #expect(badManifest.status == 400 && badManifest.errorCode == "invalid_manifest")
            let badType = try await h.complete(event, chunks: 3, bytes: image.count, sha256: sha, contentType: "png")
            #expect(badType.status == 400 && badType.errorCode == "invalid_manifest", "\(badType.text)")
            #expect(try await h.job(created.id).state == .running)

            let good = try await h.complete(event, chunks: 3, bytes: image.count, sha256: sha)
            #expect(good.status == 200)
            #expect(try good.decode(JobStatus.self).state == .ready)
            // Once ready, the attempt's token no longer opens anything.
            #expect(try await h.putChunk(event, index: 0, bytes: Array(image[0..<4096])).status == 401)
            h.invoker.finish(event, .succeeded)
        }
    }

    @Test func aFailedInvocationRollsBackAndLocksOutItsToken() async throws {
        try await GatewayHarness.run(configure: GatewayHarness.smallChunks) { h in
            let (created, event) = try await h.createJob()
            #expect(try await h.putChunk(event, index: 0, bytes: GatewayHarness.pattern(4096, seed: 1)).status == 201)
            h.invoker.finish(event, .failed(JobError(code: "function_error", message: "Chaos.Error: boom")))
            try await h.eventually("the job to fail") { try await h.job(created.id).state == .failed }
            let status = try await h.job(created.id)
            #expect(status.error == JobError(code: "function_error", message: "Chaos.Error: boom"))
            // The failure is recorded first; its chunks go right after.
            try await h.eventually("the failed attempt's chunks to go") { try await h.keptSpool().isEmpty }
            #expect(try await h.putChunk(event, index: 1, bytes: GatewayHarness.pattern(4096, seed: 2)).status == 401)
            let image = try await h.request(.GET, try #require(created.image))
            #expect(image.status == 410 && image.errorCode == "image_unavailable")
        }
    }

    @Test func returningWithoutCompletingFailsTheJob() async throws {
        try await GatewayHarness.run(configure: GatewayHarness.smallChunks) { h in
            let (created, event) = try await h.createJob()
            h.invoker.finish(event, .succeeded)
            try await h.eventually("the job to fail") { try await h.job(created.id).state == .failed }
            #expect(try await h.job(created.id).error?.code == "incomplete_upload")
        }
    }
}
