import Foundation
import Logging
import NIOCore
import RelayProtocol

/// An image a generator function made, or makes as it is read: direct delivery sends the pieces
/// `produce` hands out while it still runs; an upload for a gateway job takes them all first.
public struct GeneratedImage: Sendable {
    /// Its media type.
    public var contentType: String
    /// Makes the image, handing its bytes to the closure it is given, in order.
    let produce: @Sendable (_ emit: @escaping ([UInt8]) -> Void) -> Void

    /// An image already made.
    public init(bytes: [UInt8], contentType: String) {
        self.contentType = contentType
        self.produce = { emit in emit(bytes) }
    }

    /// An image made piece by piece (e.g. a PNG encoded row by row).
    public init(contentType: String, producing: @escaping @Sendable (_ emit: @escaping ([UInt8]) -> Void) -> Void) {
        self.contentType = contentType
        self.produce = producing
    }

    /// The whole image; one made piece by piece is made (again) by each call.
    public func makeBytes() -> [UInt8] {
        var all = [UInt8]()
        produce { all.append(contentsOf: $0) }
        return all
    }
}

/// A handler for generator functions: decodes the gateway's `InvocationEvent`, renders, uploads the chunks
/// and returns the completed manifest (`CompleteRequest`) as the invocation's response.
///
/// ```swift
/// try await FunctionRuntime(handler: GeneratorFunction { event, context in
///     GeneratedImage(bytes: render(event.params), contentType: "image/png")
/// }).run()
/// ```
public struct GeneratorFunction: FunctionHandler {
    private let render: @Sendable (InvocationEvent, InvocationContext) async throws -> GeneratedImage
    private let uploader: ChunkUploader

    /// Makes a generator from its render closure.
    public init(
        uploader: ChunkUploader = ChunkUploader(),
        render: @escaping @Sendable (InvocationEvent, InvocationContext) async throws -> GeneratedImage
    ) {
        self.uploader = uploader
        self.render = render
    }

    /// Through a Function URL, delivers the image itself (`DirectDelivery`); otherwise renders for a
    /// gateway job and uploads (`handle`).
    public func respond(to event: ByteBuffer, context: InvocationContext) async throws -> FunctionResponse {
        if let request = try? JSONDecoder().decode(FunctionURLRequest.self, from: Data(event.readableBytesView)) {
            return try await DirectDelivery.respond(to: request, context: context, render: render)
        }
        return .buffered(try await handle(event, context: context))
    }

    /// Renders and uploads; the response body is the manifest as JSON.
    public func handle(_ event: ByteBuffer, context: InvocationContext) async throws -> ByteBuffer {
        let decoded: InvocationEvent
        do {
            decoded = try JSONDecoder().decode(InvocationEvent.self, from: Data(event.readableBytesView))
        } catch {
            throw FunctionError(errorType: "InvalidEvent", errorMessage: "not a ChunkRelay invocation event: \(error)")
        }
        let image = try await render(decoded, context)
        let bytes = image.makeBytes()
        context.logger.info("rendered \(bytes.count) bytes; uploading to job \(decoded.jobId)")
        let manifest = try await uploader.upload(bytes, contentType: image.contentType, for: decoded)
        return ByteBuffer(bytes: try JSONEncoder().encode(manifest))
    }
}
