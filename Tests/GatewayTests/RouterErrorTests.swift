import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import RelayProtocol
import Testing

@testable import Gateway

/// The gateway's answers to bad requests that need no socket, through Hummingbird's in-process router
/// test mode: each is a status and the JSON error body, with the headers the status calls for.
@Suite(.timeLimit(.minutes(2))) struct RouterErrorTests {
    /// Runs `body` against the real router of a gateway on a fresh SQLite ledger (no services running:
    /// none of these requests needs the dispatcher or the janitor).
    static func withRouter(_ body: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("router-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        var configuration = GatewayConfiguration()
        configuration.stateDirectory = directory
        configuration.webRoot = nil
        var logger = Logger(label: "router-test")
        logger.logLevel = .warning
        let gateway = try await Gateway.open(configuration: configuration, invoker: FakeInvoker(), logger: logger)
        let app = Application(router: gateway.buildRouter(), logger: logger)
        try await app.test(.router) { client in try await body(client) }
    }

    static func error(_ response: TestResponse) throws -> (code: String, message: String) {
        let body = try JSONDecoder().decode(ErrorBody.self, from: Data(response.body.readableBytesView))
        return (body.error.code, body.error.message)
    }

    @Test func malformedAndIncompleteJobRequestsAre400() async throws {
        try await Self.withRouter { client in
            for (body, message) in [
                ("{", "the body is not valid JSON"), (#"{"params":{}}"#, "missing field 'function'"),
                (#"{"function":"map-render","delivery":"fax"}"#, "invalid value for 'delivery'"),
            ] {
                try await client.execute(uri: "/v1/jobs", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: body)) { response throws in
                    #expect(response.status == .badRequest, "\(body)")
                    #expect(response.headers[.contentType] == "application/json")
                    let error = try Self.error(response)
                    #expect(error.code == GatewayErrorCode.invalidRequest.rawValue, "\(body)")
                    #expect(error.message.contains(message), "\(body): \(error.message)")
                }
            }
        }
    }

    @Test func unknownThingsAre404() async throws {
        try await Self.withRouter { client in
            for (uri, method, code): (String, HTTPRequest.Method, GatewayErrorCode) in [
                ("/v1/jobs/AAAAAAAAAAAAAAAAAAAAAA", .get, .jobNotFound),
                ("/v1/jobs/not-a-token", .get, .jobNotFound),
                ("/v1/jobs/AAAAAAAAAAAAAAAAAAAAAA", .delete, .jobNotFound),
                ("/v1/images/AAAAAAAAAAAAAAAAAAAAAA", .get, .imageNotFound),
                ("/v1/nothing-here", .get, .notFound),
            ] {
                try await client.execute(uri: uri, method: method) { response throws in
                    #expect(response.status == .notFound, "\(method) \(uri)")
                    #expect(try Self.error(response).code == code.rawValue, "\(method) \(uri)")
                }
            }
            try await client.execute(
                uri: "/v1/jobs", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: #"{"function":"nope"}"#)
            ) { response throws in
                #expect(response.status == .notFound)
                #expect(try Self.error(response).code == GatewayErrorCode.functionNotFound.rawValue)
            }
        }
    }

    @Test func aKnownPathAskedWithAnotherMethodIs405WithAllow() async throws {
        try await Self.withRouter { client in
            try await client.execute(uri: "/v1/jobs", method: .patch) { response throws in
                #expect(response.status == .methodNotAllowed)
                #expect(response.headers[.allow] == "POST")
                #expect(try Self.error(response).code == GatewayErrorCode.methodNotAllowed.rawValue)
            }
            try await client.execute(uri: "/v1/images/AAAAAAAAAAAAAAAAAAAAAA", method: .delete) { response throws in
                #expect(response.status == .methodNotAllowed)
                #expect(response.headers[.allow] == "GET, HEAD")
            }
        }
    }

    @Test func uploadsWithoutTheAttemptsTokenAre401() async throws {
        try await Self.withRouter { client in
            let created = try await client.execute(
                uri: "/v1/jobs", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: #"{"function":"map-render"}"#)
            ) { response throws in try JSONDecoder().decode(JobCreated.self, from: Data(response.body.readableBytesView)) }
            let digest = ContentDigest(of: [1, 2, 3]).headerValue
            for authorization in [nil, "Bearer wrong", "Basic AAAA"] {
                var headers: HTTPFields = [HTTPField.Name("Content-Digest")!: digest]
                if let authorization { headers[.authorization] = authorization }
                try await client.execute(uri: "/v1/jobs/\(created.id)/chunks/0", method: .put, headers: headers, body: ByteBuffer(bytes: [1, 2, 3])) { response throws in
                    #expect(response.status == .unauthorized, "\(authorization ?? "no Authorization")")
                    #expect(response.headers[.wwwAuthenticate] == "Bearer")
                    #expect(try Self.error(response).code == GatewayErrorCode.invalidToken.rawValue)
                }
            }
            try await client.execute(
                uri: "/v1/jobs/\(created.id)/complete", method: .post, headers: [.authorization: "Bearer wrong"],
                body: ByteBuffer(string: #"{"chunks":1,"bytes":3,"sha256":"00","contentType":"x"}"#)
            ) { response throws in
                #expect(response.status == .unauthorized)
            }
            // And a stream resumed from something that is not a chunk event id is refused before it starts.
            try await client.execute(uri: "/v1/jobs/\(created.id)/events", method: .get, headers: [HTTPField.Name("Last-Event-ID")!: "soon"]) { response throws in
                #expect(response.status == .badRequest)
                #expect(try Self.error(response).code == GatewayErrorCode.invalidLastEventId.rawValue)
            }
        }
    }
}
