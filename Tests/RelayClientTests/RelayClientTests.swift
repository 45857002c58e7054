import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import RelayClient
import RelayProtocol
import Synchronization
import Testing

/// An event-stream server that drops the connection after `cutAfter` chunks on the first connection,
/// and records the `Last-Event-ID` each connection sent.
final class FlakyEventServer: Sendable {
    let chunks: [[UInt8]]
    let cutAfter: Int
    let announcedDigest: String?
    let lastEventIDs = Mutex<[String?]>([])

    init(chunks: [[UInt8]], cutAfter: Int, announcedDigest: String? = nil) {
        self.chunks = chunks
        self.cutAfter = cutAfter
        self.announcedDigest = announcedDigest
    }

    func router() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.get("/v1/jobs/{id}/events") { request, _ -> Response in
            let lastID = request.headers[HTTPField.Name("Last-Event-ID")!]
            let connection = self.lastEventIDs.withLock { ids -> Int in
                ids.append(lastID)
                return ids.count
            }
            let start = lastID.flatMap(Int.init).map { $0 + 1 } ?? 0
            var text = "retry: 10\n\n"
            let end = connection == 1 ? min(self.cutAfter, self.chunks.count) : self.chunks.count
            for index in start..<end {
                text += ServerSentEvent(event: "chunk", data: Data(self.chunks[index]).base64EncodedString(), id: String(index)).encoded()
            }
            if connection > 1 {
                let all = self.chunks.flatMap { $0 }
                let done = DoneEvent(chunks: self.chunks.count, bytes: Int64(all.count), sha256: self.announcedDigest ?? ContentDigest(of: all).hex, contentType: "application/octet-stream")
                text += ServerSentEvent(event: "done", data: String(decoding: try JSONEncoder().encode(done), as: UTF8.self)).encoded()
            }
            // The first response just ends, as a dropped connection would, without a final event.
            return Response(status: .ok, headers: [.contentType: "text/event-stream"], body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        return router
    }
}

@Suite(.timeLimit(.minutes(5))) struct RelayClientTests {
    @Test func aDroppedStreamResumesAfterTheLastChunkAndVerifies() async throws {
        let chunks = (0..<6).map { index in (0..<1000).map { UInt8(truncatingIfNeeded: $0 * 7 + index) } }
        let server = FlakyEventServer(chunks: chunks, cutAfter: 3)
        let app = Application(router: server.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            let relay = RelayClient(baseURL: "http://127.0.0.1:\(client.port!)")
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("resume-\(UUID().uuidString).bin")
            defer { try? FileManager.default.removeItem(at: out) }
            let indices = Mutex<[Int]>([])
            let image = try await relay.streamImage("job", to: out) { event in
                if case .chunk(let index, _) = event { indices.withLock { $0.append(index) } }
            }
            #expect(indices.withLock { $0 } == Array(0..<6), "nothing lost, nothing repeated")
            #expect(server.lastEventIDs.withLock { $0 } == [nil, "2"])
            #expect(try Data(contentsOf: out) == Data(chunks.flatMap { $0 }))
            #expect(image.sha256 == ContentDigest(of: chunks.flatMap { $0 }).hex)
        }
    }

    @Test func aStreamThatDoesNotMatchItsDigestIsNotHandedOut() async throws {
        let chunks = [[UInt8](repeating: 1, count: 100), [UInt8](repeating: 2, count: 100)]
        let server = FlakyEventServer(chunks: chunks, cutAfter: 1, announcedDigest: ContentDigest(of: [9, 9, 9]).hex)
        let app = Application(router: server.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            let relay = RelayClient(baseURL: "http://127.0.0.1:\(client.port!)")
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("corrupt-\(UUID().uuidString).bin")
            await #expect {
                _ = try await relay.streamImage("job", to: out)
            } throws: { error in
                (error as? RelayClientError)?.code == "digest_mismatch"
            }
            #expect(!FileManager.default.fileExists(atPath: out.path))
            #expect(!FileManager.default.fileExists(atPath: out.path + ".partial"))
        }
    }
}
