import Foundation
import NIOCore

/// Receives a streamed response's bytes while the function writes them (`invoke_with_response_stream`).
public struct ResponseStreamSink: Sendable {
    let write: @Sendable (ByteBuffer) async throws -> Void

    /// A sink that hands each piece to `write`; the function's writes wait while `write` does (backpressure).
    public init(_ write: @escaping @Sendable (ByteBuffer) async throws -> Void) {
        self.write = write
    }
}
