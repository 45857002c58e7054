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
            // The image's pieces as the generator makes them; the response sends each chunk as soon as
            // it is whole, so the first bytes leave before the last row is rendered.
            let (pieces, continuation) = AsyncStream.makeStream(of: [UInt8].self)
            async let produced: Void = {
                image.produce { continuation.yield($0) }
                continuation.finish()
            }()
            if !wantsEvents {
                try await writer.writeStatusAndHeaders(HTTPStatusAndHeaders(headers: ["content-type": image.contentType]))
                for await piece in pieces { try await writer.write(ByteBuffer(bytes: piece)) }
                await produced
                return
            }
            var hasher = SHA256()
            var index = 0
            var total = 0
            var pending = [UInt8]()
            pending.reserveCapacity(chunkSize)
            func send(_ chunk: ArraySlice<UInt8>) async throws {
                try await writer.write(Self.chunkEvent(index: index, chunk, hasher: &hasher))
                index += 1
                total += chunk.count
            }
            for await piece in pieces {
                var rest = piece[...]
                while !rest.isEmpty {
                    let take = min(chunkSize - pending.count, rest.count)
                    pending.append(contentsOf: rest.prefix(take))
                    rest = rest.dropFirst(take)
                    if pending.count == chunkSize {
                        try await send(pending[...])
                        pending.removeAll(keepingCapacity: true)
                    }
                }
            }
            await produced
            if !pending.isEmpty { try await send(pending[...]) }
            let done = ImageManifest(chunks: index, bytes: Int64(total), sha256: ContentDigest(hasher.finalize()).hex, contentType: image.contentType)
            try await writer.write(Self.event(name: .done, done))
        }
    }

    /// One `chunk` event (base64, wrapped below the line limit), hashing the bytes into the image's digest.
    private static func chunkEvent(index: Int, _ chunk: ArraySlice<UInt8>, hasher: inout SHA256) -> ByteBuffer {
        let id = String(index)
        return chunk.withUnsafeBytes { payload in
            hasher.update(bufferPointer: payload)
            let length = ServerSentEvent.base64EventLength(event: JobEventContract.Name.chunk.rawValue, id: id, payloadCount: payload.count)
            var buffer = ByteBuffer()
            buffer.reserveCapacity(length)
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { output in
                ServerSentEvent.encodeBase64Event(event: JobEventContract.Name.chunk.rawValue, id: id, payload: payload, into: output)
            }
            return buffer
        }
    }

    private static func event(name: JobEventContract.Name, _ payload: some Encodable) -> ByteBuffer {
        ByteBuffer(bytes: JobEventContract.encode(name, payload))
    }
}
