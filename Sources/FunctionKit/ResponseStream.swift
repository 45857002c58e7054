import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// Writes a streamed response (Lambda's response streaming) while the handler produces it.
public struct ResponseStreamWriter: Sendable {
    private let sink: @Sendable (ByteBuffer) async throws -> Void

    init(_ sink: @escaping @Sendable (ByteBuffer) async throws -> Void) {
        self.sink = sink
    }

    /// Sends `bytes` now; waits while the runtime is not reading (backpressure).
    public func write(_ bytes: ByteBuffer) async throws {
        guard bytes.readableBytes > 0 else { return }
        try await sink(bytes)
    }
}

/// What a handler answers with: one buffered payload, or a stream written as it is produced.
public enum FunctionResponse: Sendable {
    /// A whole response (up to 6 MiB on Lambda).
    case buffered(ByteBuffer)
    /// A streamed response (`Lambda-Runtime-Function-Response-Mode: streaming`; up to 200 MiB on Lambda).
    /// An error thrown by `body` after it began writing is reported in the trailers.
    case streamed(contentType: String, body: @Sendable (ResponseStreamWriter) async throws -> Void)
}

extension RuntimeAPIClient {
    /// Posts a streamed response: a chunked body, and on failure the error in the trailers
    /// `Lambda-Runtime-Function-Error-Type` and `Lambda-Runtime-Function-Error-Body` (base64 of the error JSON).
    ///
    /// AsyncHTTPClient cannot send request trailers, so this speaks HTTP/1.1 on its own connection.
    public func respondStreaming(
        requestID: String, contentType: String, body: @Sendable (ResponseStreamWriter) async throws -> Void
    ) async throws {
        let (host, port) = try Self.hostAndPort(endpoint)
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                }
            }
        try await channel.executeThenClose { inbound, outbound in
            var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/2018-06-01/runtime/invocation/\(requestID)/response")
            head.headers.add(name: "Host", value: endpoint)
            head.headers.add(name: "Content-Type", value: contentType)
            head.headers.add(name: "Transfer-Encoding", value: "chunked")
            head.headers.add(name: "Lambda-Runtime-Function-Response-Mode", value: "streaming")
            head.headers.add(name: "Trailer", value: "Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body")
            try await outbound.write(.head(head))
            var trailers: HTTPHeaders?
            do {
                try await body(ResponseStreamWriter { bytes in try await outbound.write(.body(.byteBuffer(bytes))) })
            } catch {
                let failure = FunctionError(error)
                logger.error("streamed response failed: \(failure)")
                trailers = [
                    "Lambda-Runtime-Function-Error-Type": failure.errorType,
                    "Lambda-Runtime-Function-Error-Body": Data(failure.jsonBody.readableBytesView).base64EncodedString(),
                ]
            }
            try await outbound.write(.end(trailers))
            var status: HTTPResponseStatus?
            var text = ""
            for try await part in inbound {
                switch part {
                case .head(let response): status = response.status
                case .body(let bytes): if text.utf8.count < 4096 { text += String(buffer: bytes) }
                case .end: break
                }
                if case .end = part { break }
            }
            guard let status, (200..<300).contains(Int(status.code)) else {
                throw RuntimeAPIError(status: Int(status?.code ?? 0), body: text)
            }
        }
    }

    static func hostAndPort(_ endpoint: String) throws -> (String, Int) {
        guard let colon = endpoint.lastIndex(of: ":"), let port = Int(endpoint[endpoint.index(after: colon)...]) else {
            throw FunctionError(errorType: "Runtime.InvalidEndpoint", errorMessage: "AWS_LAMBDA_RUNTIME_API is not host:port: \(endpoint)")
        }
        return (String(endpoint[..<colon]), port)
    }
}
