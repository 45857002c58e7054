import Foundation
import RelayProtocol

/// A job event, typed (the SSE events of `GET /v1/jobs/{id}/events`).
public enum JobEvent: Sendable, Equatable {
    /// Waiting in the queue at this 1-based position.
    case queued(position: Int)
    /// The function was invoked (attempt number).
    case started(attempt: Int)
    /// Chunks and bytes the function has uploaded so far.
    case progress(chunks: Int, bytes: Int64)
    /// Stream mode: the chunk at `index`, in order.
    case chunk(index: Int, bytes: [UInt8])
    /// Retrieve mode: the image can be fetched once at `image`.
    case ready(image: String, bytes: Int64, sha256: String)
    /// Stream mode: every chunk was sent; the whole image's digest.
    case done(DoneEvent)
    /// The attempt failed and the function is invoked again as `attempt`: chunks received so far are void.
    case retrying(attempt: Int, error: JobError)
    /// The job failed, was cancelled or expired.
    case failed(JobError)

    /// Whether no event follows this one.
    public var isFinal: Bool {
        switch self {
        case .ready, .done, .failed: return true
        default: return false
        }
    }

    /// Decodes a server-sent event with the contract's payload types; nil for an event type this client does not know.
    public init?(_ event: ServerSentEvent) throws {
        guard let name = event.event.flatMap(JobEventContract.Name.init(rawValue:)) else { return nil }
        let decoder = JSONDecoder()
        let data = Data(event.data.utf8)
        switch name {
        case .queued: self = .queued(position: try decoder.decode(JobEventContract.Queued.self, from: data).position)
        case .started: self = .started(attempt: try decoder.decode(JobEventContract.Started.self, from: data).attempt)
        case .progress:
            let progress = try decoder.decode(JobEventContract.Progress.self, from: data)
            self = .progress(chunks: progress.chunks, bytes: progress.bytes)
        case .chunk:
            guard let id = event.id.flatMap(ChunkEventID.init), let bytes = Data(base64Encoded: event.data, options: .ignoreUnknownCharacters) else {
                throw RelayClientError(status: 0, code: "invalid_event", message: "a chunk event needs a chunk event id (`n` or `attempt:n`) and base64 data")
            }
            self = .chunk(index: id.index, bytes: Array(bytes))
        case .ready:
            let ready = try decoder.decode(JobEventContract.Ready.self, from: data)
            self = .ready(image: ready.image, bytes: ready.bytes, sha256: ready.sha256)
        case .done: self = .done(try decoder.decode(JobEventContract.Done.self, from: data))
        case .retrying:
            let retrying = try decoder.decode(JobEventContract.Retrying.self, from: data)
            self = .retrying(attempt: retrying.attempt, error: JobError(code: retrying.code, message: retrying.message))
        case .failed: self = .failed(try decoder.decode(JobEventContract.Failed.self, from: data))
        }
    }
}
