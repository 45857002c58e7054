import AsyncAlgorithms
import Foundation
import NIOCore

/// One `RESPONSE_STREAM` request's invocation. It has to start before the HTTP response exists (the
/// status and headers come from what the function writes first) and go on while the body is written,
/// so it runs in a task this object owns: whoever stops listening cancels it (`finish`), and if the
/// response is dropped unwritten (the client left before its head), `deinit` does.
final class FunctionURLStream: Sendable {
    enum Piece: Sendable {
        /// The content type the function streams with.
        case begin(String?)
        case bytes(ByteBuffer)
        /// The invocation ended (its result, or the runtime's error).
        case end(Result<InvocationResult, RuntimeError>)
    }

    /// What the function writes, in order; a send waits until the response takes it (backpressure).
    let pieces = AsyncChannel<Piece>()
    private let task: Task<Void, Never>

    init(runtime: LocalRuntime, reservation: Reservation, payload: ByteBuffer, trace: XRayTraceID) {
        let pieces = pieces
        task = Task {
            let sink = ResponseStreamSink(begin: { await pieces.send(.begin($0)) }) { piece in
                await pieces.send(.bytes(piece))
                // Nobody takes the bytes any more: the function's next write fails and its stream ends.
                try Task.checkCancellation()
            }
            let result: Result<InvocationResult, RuntimeError>
            do throws(RuntimeError) {
                result = .success(try await runtime.invoke(reservation, payload: payload, trace: trace, sink: sink))
            } catch {
                result = .failure(error)
            }
            await pieces.send(.end(result))
            pieces.finish()
        }
    }

    /// Stops listening: the invocation is cancelled if it is still going.
    func finish() {
        task.cancel()
        pieces.finish()
    }

    deinit {
        task.cancel()
        pieces.finish()
    }
}
