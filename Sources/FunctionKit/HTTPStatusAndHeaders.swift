import Foundation
import NIOCore

/// The status and headers a streamed HTTP response (a Function URL in `RESPONSE_STREAM` mode) starts
/// with: written first as Lambda's prelude (JSON, then eight NUL bytes), before the body.
public struct HTTPStatusAndHeaders: Sendable, Encodable {
    /// The HTTP status.
    public var statusCode: Int
    /// Response headers.
    public var headers: [String: String]
    /// `Set-Cookie` values.
    public var cookies: [String]

    /// Makes a head.
    public init(statusCode: Int = 200, headers: [String: String] = [:], cookies: [String] = []) {
        self.statusCode = statusCode
        self.headers = headers
        self.cookies = cookies
    }

    /// The content type of a response stream that carries a prelude.
    public static let contentType = "application/vnd.awslambda.http-integration-response"

    /// The prelude's bytes: the JSON head and its delimiter.
    var prelude: ByteBuffer {
        var buffer = ByteBuffer(bytes: (try? JSONEncoder().encode(self)) ?? Data("{}".utf8))
        buffer.writeRepeatingByte(0, count: 8)
        return buffer
    }
}

extension ResponseStreamWriter {
    /// Sends the status and headers of a streamed HTTP response; call it once, before any `write`, in a
    /// response made with `FunctionResponse.httpStream` (shaped like swift-aws-lambda-runtime's
    /// `writeStatusAndHeaders`).
    ///
    /// ```swift
    /// return .httpStream { writer in
    ///     try await writer.writeStatusAndHeaders(HTTPStatusAndHeaders(headers: ["content-type": "text/event-stream"]))
    ///     try await writer.write(ByteBuffer(string: "data: hello\n\n"))
    /// }
    /// ```
    public func writeStatusAndHeaders(_ head: HTTPStatusAndHeaders) async throws {
        try await write(head.prelude)
    }
}

extension FunctionResponse {
    /// A streamed HTTP response for a Function URL: `body` writes the status and headers first
    /// (`writeStatusAndHeaders`), then the body as it is produced.
    public static func httpStream(_ body: @escaping @Sendable (ResponseStreamWriter) async throws -> Void) -> FunctionResponse {
        .streamed(contentType: HTTPStatusAndHeaders.contentType, body: body)
    }
}
