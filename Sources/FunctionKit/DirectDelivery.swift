import Crypto
import Foundation
import NIOCore
import RelayProtocol

/// A generator's answer to its Function URL (`RESPONSE_STREAM`): the image straight to the client,
/// without the gateway. The query's numbers are the render's params (`?width=512&height=384&seed=3`).
///
/// With `Accept: text/event-stream` the image comes as Server-Sent Events in the gateway's stream
/// contract: `started`, then one `chunk` event per `chunkSize` bytes (base64, `id:` the index, lines
/// under 64 KiB), then `done` with `chunks`, `bytes`, `sha256` and `contentType`, so a client checks
/// the whole image before it keeps it. Otherwise the bytes themselves with the image's content type
/// (curl, a browser's address bar); a stream's headers go out before its digest is known, so that
/// form carries none.
enum DirectDelivery {
    static func respond(
        to request: FunctionURLRequest, context: InvocationContext,
        render: @escaping @Sendable (InvocationEvent, InvocationContext) async throws -> GeneratedImage
    ) async throws -> FunctionResponse {
        let query = request.queryStringParameters ?? [:]
        var params: [String: JSONValue] = [:]
        for (key, value) in query where key != "chunkSize" {
            params[key] = Double(value).map(JSONValue.number) ?? .string(value)
        }
        let chunkSize = query["chunkSize"].flatMap(Int.init).map { min(max($0, RelayLimits.minimumChunkSize), RelayLimits.maximumChunkSize) }
            ?? RelayLimits.defaultChunkSize
        let invocation = InvocationEvent(jobId: "direct-\(context.requestID)", attempt: 1, params: params, chunkSize: chunkSize, ingestURL: "", uploadToken: "")
        let wantsEvents = request.headers["accept"]?.contains("text/event-stream") == true
        return .httpStream { writer in
            if wantsEvents {
                try await writer.writeStatusAndHeaders(HTTPStatusAndHeaders(headers: ["content-type": "text/event-stream", "cache-control": "no-cache"]))
                try await writer.write(Self.event(name: .started, JobEventContract.Started(attempt: 1)))
            }
            // A bad parameter before anything was sent is the function's error (Lambda's 502); after the
            // event stream began, a `failed` event says why.
            let image: GeneratedImage
            do {
                image = try await render(invocation, context)
            } catch where wantsEvents {
                let failure = FunctionError(error)
                try await writer.write(Self.event(name: .failed, JobError(code: failure.errorType, message: failure.errorMessage)))
                return
            }
            guard wantsEvents else {
                try await writer.writeStatusAndHeaders(HTTPStatusAndHeaders(headers: ["content-type": image.contentType]))
                var offset = 0
                while offset < image.bytes.count {
                    let end = min(offset + chunkSize, image.bytes.count)
                    try await writer.write(ByteBuffer(bytes: image.bytes[offset..<end]))
                    offset = end
                }
                return
            }
            var hasher = SHA256()
            var index = 0
            var offset = 0
            while offset < image.bytes.count {
                let end = min(offset + chunkSize, image.bytes.count)
                let id = String(index)
                let buffer = image.bytes[offset..<end].withUnsafeBytes { chunk in
                    hasher.update(bufferPointer: chunk)
                    let length = ServerSentEvent.base64EventLength(event: JobEventContract.Name.chunk.rawValue, id: id, payloadCount: chunk.count)
                    var buffer = ByteBuffer()
                    buffer.reserveCapacity(length)
                    buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { output in
                        ServerSentEvent.encodeBase64Event(event: JobEventContract.Name.chunk.rawValue, id: id, payload: chunk, into: output)
                    }
                    return buffer
                }
                try await writer.write(buffer)
                index += 1
                offset = end
            }
            let done = ImageManifest(chunks: index, bytes: Int64(image.bytes.count), sha256: ContentDigest(hasher.finalize()).hex, contentType: image.contentType)
            try await writer.write(Self.event(name: .done, done))
        }
    }

    private static func event(name: JobEventContract.Name, _ payload: some Encodable) -> ByteBuffer {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(payload)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        return ByteBuffer(bytes: ServerSentEvent(event: name.rawValue, data: data).encodedBytes())
    }
}
