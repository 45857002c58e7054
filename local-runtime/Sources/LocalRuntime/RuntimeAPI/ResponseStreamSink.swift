import Foundation
import NIOCore

/// Receives a streamed response's bytes while the function writes them (`invoke_with_response_stream`,
/// a Function URL in `RESPONSE_STREAM` mode).
public struct ResponseStreamSink: Sendable {
    let begin: @Sendable (_ contentType: String?) async -> Void
    let write: @Sendable (ByteBuffer) async throws -> Void

    /// A sink that hands each piece to `write`; the function's writes wait while `write` does (backpressure).
    /// `begin` hears the content type the function streams with, before the first piece.
    public init(begin: @escaping @Sendable (_ contentType: String?) async -> Void = { _ in }, _ write: @escaping @Sendable (ByteBuffer) async throws -> Void) {
        self.begin = begin
        self.write = write
    }
}
