import Foundation
import Gateway
import HTTPTypes
import Hummingbird
import NIOCore
import ServiceLifecycle

extension Inspector {
    /// Adds `/inspect` (the page) and `/inspect/api/…` (its JSON and event stream, and replay) to the
    /// gateway's router, behind `InspectorAccess`.
    public func addRoutes(to router: Router<GatewayRequestContext>, token: String?) {
        let group = router.group("inspect").add(middleware: InspectorAccess(token: token))
        group.get { _, _ in
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(string: InspectorPage.html)))
        }
        group.get("api/snapshot") { _, _ in try Self.json(try await snapshot()) }
        group.get("api/jobs/{id}") { _, context in try Self.json(try await job(id: try context.parameters.require("id"))) }
        group.get("api/invocations/{id}") { request, context in
            let attempt = try request.uri.queryParameters["attempt"].map { text -> Int in
                // Digits only; a number past Int's range is still a valid attempt number, one that never ran: 404, not 400.
                let digits = !text.isEmpty && text.utf8.allSatisfy { (0x30...0x39).contains($0) }
                let attempt = digits ? Int(text) ?? .max : 0
                guard attempt >= 1 else { throw GatewayError(.badRequest, .invalidRequest, "attempt must be a whole number from 1") }
                return attempt
            }
            return try Self.json(try invocation(requestId: try context.parameters.require("id"), attempt: attempt))
        }
        group.post("api/replay/{id}") { _, context in
            try Self.json(try await replay(try context.parameters.require("id")), status: .accepted)
        }
        group.get("api/events") { _, _ in events() }
    }

    /// `GET /inspect/api/events`: a `snapshot` event each time something the page shows changed (looked
    /// at four times a second, so a burst of chunks is one event), and a heartbeat comment when idle.
    private func events() -> Response {
        let body = ResponseBody { writer in
            let stopping = ShutdownFlag()
            try await withGracefulShutdownHandler {
                var sent = -1
                var quiet = 0
                while !stopping.isSet {
                    let now = version
                    if now != sent {
                        sent = now
                        quiet = 0
                        let data = try Self.encoder.encode(try await snapshot())
                        try await writer.write(ByteBuffer(string: "event: snapshot\ndata: \(String(decoding: data, as: UTF8.self))\n\n"))
                    } else if quiet >= 60 {
                        quiet = 0
                        try await writer.write(ByteBuffer(string: ": idle\n\n"))
                    }
                    quiet += 1
                    try await Task.sleep(for: .milliseconds(250))
                }
            } onGracefulShutdown: {
                stopping.set()
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
    }

    private static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    private static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
    }
}
