import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import RelayProtocol
import Synchronization
import Testing

@testable import FunctionKit

/// A stand-in gateway that records what the uploader sends and can fail on request.
final class RecordingGateway: Sendable {
    struct Put: Sendable {
        var index: Int
        var body: [UInt8]
        var digest: String?
        var authorization: String?
    }

    struct State {
        var puts: [Put] = []
        var manifests: [CompleteRequest] = []
        var failuresLeft: [Int: (status: HTTPResponse.Status, count: Int)] = [:]
    }

    let state = Mutex(State())

    func router() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.put("/v1/jobs/{id}/chunks/{index}") { request, context -> Response in
            let index = Int(try context.parameters.require("index"))!
            let body = try await request.body.collect(upTo: 1 << 20)
            let failure: HTTPResponse.Status? = self.state.withLock { state in
                guard let entry = state.failuresLeft[index], entry.count > 0 else { return nil }
                state.failuresLeft[index] = (entry.status, entry.count - 1)
                return entry.status
            }
            if let failure {
                return Response(status: failure, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: #"{"error":{"code":"test_failure","message":"as configured"}}"#)))
            }
            self.state.withLock {
                $0.puts.append(Put(index: index, body: Array(body.readableBytesView), digest: request.headers[HTTPField.Name("Content-Digest")!], authorization: request.headers[.authorization]))
            }
            return Response(status: .created)
        }
        router.post("/v1/jobs/{id}/complete") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            let manifest = try JSONDecoder().decode(CompleteRequest.self, from: Data(body.readableBytesView))
            self.state.withLock { $0.manifests.append(manifest) }
            return Response(status: .ok)
        }
        return router
    }
}

@Suite(.timeLimit(.minutes(5))) struct ChunkUploaderTests {
    static func event(_ url: String) -> InvocationEvent {
        InvocationEvent(jobId: "job", attempt: 1, params: [:], chunkSize: 4096, ingestURL: "\(url)/v1/jobs/job", uploadToken: "secret")
    }

    static var fast: ChunkUploader.Configuration {
        var configuration = ChunkUploader.Configuration()
        configuration.initialBackoff = .milliseconds(5)
        return configuration
    }

    @Test func splitsAtTheCapDigestsEachChunkAndCompletes() async throws {
        let gateway = RecordingGateway()
        let app = Application(router: gateway.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            let image = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 * 7) }
            let manifest = try await ChunkUploader(configuration: Self.fast).upload(image, contentType: "image/png", for: Self.event("http://127.0.0.1:\(client.port!)"))
            #expect(manifest.chunks == 3)
            #expect(manifest.sha256 == ContentDigest(of: image).hex)
            let state = gateway.state.withLock { $0 }
            let puts = state.puts.sorted { $0.index < $1.index }
            #expect(puts.map(\.index) == [0, 1, 2])
            #expect(puts.map(\.body.count) == [4096, 4096, 1808])
            #expect(puts.flatMap(\.body) == image)
            for put in puts {
                #expect(put.digest == ContentDigest(of: put.body).headerValue)
                #expect(put.authorization == "Bearer secret")
            }
            #expect(state.manifests == [CompleteRequest(chunks: 3, bytes: 10_000, sha256: ContentDigest(of: image).hex, contentType: "image/png")])
        }
    }

    @Test func retriesServerErrorsThenSucceeds() async throws {
        let gateway = RecordingGateway()
        gateway.state.withLock { $0.failuresLeft = [1: (.serviceUnavailable, 2), 2: (.internalServerError, 1)] }
        let app = Application(router: gateway.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            let image = [UInt8](repeating: 9, count: 9000)
            _ = try await ChunkUploader(configuration: Self.fast).upload(image, contentType: "image/png", for: Self.event("http://127.0.0.1:\(client.port!)"))
            let state = gateway.state.withLock { $0 }
            #expect(Set(state.puts.map(\.index)) == [0, 1, 2])
            #expect(state.failuresLeft.values.allSatisfy { $0.count == 0 })
            #expect(state.manifests.count == 1)
        }
    }

    @Test func aClientErrorIsFinalAndCarriesTheGatewaysCode() async throws {
        let gateway = RecordingGateway()
        gateway.state.withLock { $0.failuresLeft = [0: (.unprocessableContent, 10)] }
        let app = Application(router: gateway.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            await #expect {
                _ = try await ChunkUploader(configuration: Self.fast).upload([1, 2, 3], contentType: "image/png", for: Self.event("http://127.0.0.1:\(client.port!)"))
            } throws: { error in
                guard let error = error as? UploadError else { return false }
                return error.status == 422 && error.code == "test_failure"
            }
            let state = gateway.state.withLock { $0 }
            #expect(state.failuresLeft[0]?.count == 9, "one attempt, no retries")
            #expect(state.manifests.isEmpty)
        }
    }

    @Test func givesUpAfterTheLastAttempt() async throws {
        let gateway = RecordingGateway()
        gateway.state.withLock { $0.failuresLeft = [0: (.serviceUnavailable, 100)] }
        let app = Application(router: gateway.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            var configuration = Self.fast
            configuration.maximumAttempts = 3
            await #expect(throws: UploadError.self) {
                _ = try await ChunkUploader(configuration: configuration).upload([1], contentType: "image/png", for: Self.event("http://127.0.0.1:\(client.port!)"))
            }
            #expect(gateway.state.withLock { $0.failuresLeft[0]?.count } == 97)
        }
    }
}

@Suite(.timeLimit(.minutes(5))) struct FunctionRuntimeTests {
    /// A Runtime API serving two invocations, then an error that ends the loop.
    final class FakeRuntimeAPI: Sendable {
        struct State {
            var served = 0
            var responses: [String: String] = [:]
            var errors: [String: (type: String?, body: String)] = [:]
        }

        let state = Mutex(State())

        func router() -> Router<BasicRequestContext> {
            let router = Router(context: BasicRequestContext.self)
            router.get("/2018-06-01/runtime/invocation/next") { _, _ -> Response in
                let served = self.state.withLock { state -> Int in
                    state.served += 1
                    return state.served
                }
                guard served <= 2 else { return Response(status: .internalServerError) }
                return Response(
                    status: .ok,
                    headers: [
                        HTTPField.Name("Lambda-Runtime-Aws-Request-Id")!: "req-\(served)",
                        HTTPField.Name("Lambda-Runtime-Deadline-Ms")!: "4102444800000",
                        HTTPField.Name("Lambda-Runtime-Invoked-Function-Arn")!: "arn:aws:lambda:us-east-1:000000000000:function:test",
                        HTTPField.Name("Lambda-Runtime-Trace-Id")!: "Root=1-abc",
                    ],
                    body: .init(byteBuffer: ByteBuffer(string: served == 1 ? "hello" : "fail"))
                )
            }
            router.post("/2018-06-01/runtime/invocation/{id}/response") { request, context -> Response in
                let body = try await request.body.collect(upTo: 1 << 20)
                let id = try context.parameters.require("id")
                self.state.withLock { $0.responses[id] = String(buffer: body) }
                return Response(status: .accepted)
            }
            router.post("/2018-06-01/runtime/invocation/{id}/error") { request, context -> Response in
                let body = try await request.body.collect(upTo: 1 << 20)
                let id = try context.parameters.require("id")
                let type = request.headers[HTTPField.Name("Lambda-Runtime-Function-Error-Type")!]
                self.state.withLock { $0.errors[id] = (type, String(buffer: body)) }
                return Response(status: .accepted)
            }
            return router
        }
    }

    @Test func runsTheHandlerAndPostsResponsesAndErrors() async throws {
        let api = FakeRuntimeAPI()
        let app = Application(router: api.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            let runtime = FunctionRuntime { event, context in
                let text = String(buffer: event)
                guard text == "hello" else { throw FunctionError(errorType: "Test.Error", errorMessage: "cannot handle \(text)") }
                #expect(context.invokedFunctionARN == "arn:aws:lambda:us-east-1:000000000000:function:test")
                #expect(context.traceID == "Root=1-abc")
                #expect(context.remainingTime > .seconds(60))
                return ByteBuffer(string: text.uppercased() + " " + context.requestID)
            }
            await #expect(throws: RuntimeAPIError.self) {
                try await runtime.run(client: RuntimeAPIClient(endpoint: "127.0.0.1:\(client.port!)", logger: Logger(label: "test")))
            }
            let state = api.state.withLock { $0 }
            #expect(state.responses == ["req-1": "HELLO req-1"])
            #expect(state.errors["req-2"]?.type == "Test.Error")
            let error = try JSONSerialization.jsonObject(with: Data((state.errors["req-2"]?.body ?? "").utf8)) as? [String: Any]
            #expect(error?["errorType"] as? String == "Test.Error")
            #expect(error?["errorMessage"] as? String == "cannot handle fail")
        }
    }
}
