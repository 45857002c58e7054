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

    /// Decodes a server-sent event; nil for an event type this client does not know.
    public init?(_ event: ServerSentEvent) throws {
        let decoder = JSONDecoder()
        let data = Data(event.data.utf8)
        struct Position: Decodable { var position: Int }
        struct Attempt: Decodable { var attempt: Int }
        struct Progress: Decodable { var chunks: Int; var bytes: Int64 }
        struct Ready: Decodable { var image: String; var bytes: Int64; var sha256: String }
        struct Retrying: Decodable { var attempt: Int; var code: String?; var message: String? }
        switch event.event {
        case "queued": self = .queued(position: try decoder.decode(Position.self, from: data).position)
        case "started": self = .started(attempt: try decoder.decode(Attempt.self, from: data).attempt)
        case "progress":
            let progress = try decoder.decode(Progress.self, from: data)
            self = .progress(chunks: progress.chunks, bytes: progress.bytes)
        case "chunk":
            // `n`, or `attempt:n` after a retry.
            guard let id = event.id, let index = id.split(separator: ":").last.flatMap({ Int($0) }),
                let bytes = Data(base64Encoded: event.data, options: .ignoreUnknownCharacters)
            else { throw RelayClientError(status: 0, code: "invalid_event", message: "a chunk event needs a numeric id and base64 data") }
            self = .chunk(index: index, bytes: Array(bytes))
        case "ready":
            let ready = try decoder.decode(Ready.self, from: data)
            self = .ready(image: ready.image, bytes: ready.bytes, sha256: ready.sha256)
        case "done": self = .done(try decoder.decode(DoneEvent.self, from: data))
        case "retrying":
            let retrying = try decoder.decode(Retrying.self, from: data)
            self = .retrying(attempt: retrying.attempt, error: JobError(code: retrying.code ?? "retrying", message: retrying.message ?? ""))
        case "failed": self = .failed(try decoder.decode(JobError.self, from: data))
        default: return nil
        }
    }
}
