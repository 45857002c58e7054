/// How a finished image reaches the client.
public enum DeliveryMode: String, Codable, Sendable, CaseIterable {
    /// Reassembled and handed out once under a key.
    case retrieve
    /// Relayed chunk by chunk over Server-Sent Events.
    case stream
}

/// The life of a job, as `GET /v1/jobs/{id}` reports it.
public enum JobState: String, Codable, Sendable, CaseIterable {
    /// Waiting in the admission queue.
    case queued
    /// Its function is running and uploading chunks.
    case running
    /// Retrieve mode: the image is complete and can be fetched once.
    case ready
    /// The image was delivered (retrieved, or streamed to the end).
    case done
    /// The function failed and the job will not be retried.
    case failed
    /// The client cancelled the job.
    case cancelled
    /// The image was never claimed before its time to live ran out.
    case expired

    /// Whether the job can no longer change.
    public var isFinal: Bool {
        switch self {
        case .queued, .running, .ready: return false
        case .done, .failed, .cancelled, .expired: return true
        }
    }
}

/// `POST /v1/jobs` body.
public struct CreateJobRequest: Codable, Sendable, Hashable {
    /// The generator function's name, for example `map-render`.
    public var function: String
    /// Parameters passed to the function as they are.
    public var params: [String: JSONValue]
    /// How the image is delivered; `retrieve` when absent.
    public var delivery: DeliveryMode

    /// Makes a request.
    public init(function: String, params: [String: JSONValue] = [:], delivery: DeliveryMode = .retrieve) {
        self.function = function
        self.params = params
        self.delivery = delivery
    }

    private enum CodingKeys: String, CodingKey { case function, params, delivery }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.function = try container.decode(String.self, forKey: .function)
        self.params = try container.decodeIfPresent([String: JSONValue].self, forKey: .params) ?? [:]
        self.delivery = try container.decodeIfPresent(DeliveryMode.self, forKey: .delivery) ?? .retrieve
    }
}

/// `202` body of `POST /v1/jobs`.
public struct JobCreated: Codable, Sendable, Hashable {
    /// The job id.
    public var id: String
    /// Always `queued` at creation.
    public var state: JobState
    /// Path of the job's SSE stream.
    public var events: String
    /// Path of the one-shot image (retrieve mode only).
    public var image: String?

    /// Makes a response body.
    public init(id: String, state: JobState, events: String, image: String?) {
        self.id = id
        self.state = state
        self.events = events
        self.image = image
    }
}

/// An error as carried in a job's status and in `failed` events.
public struct JobError: Codable, Sendable, Hashable {
    /// A stable machine-readable code, e.g. `function_error`.
    public var code: String
    /// A human-readable explanation.
    public var message: String

    /// Makes an error.
    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }
}

/// `GET /v1/jobs/{id}` body.
public struct JobStatus: Codable, Sendable, Hashable {
    /// The job id.
    public var id: String
    /// The generator function.
    public var function: String
    /// The delivery mode.
    public var delivery: DeliveryMode
    /// Where the job is in its life.
    public var state: JobState
    /// 1-based place in the admission queue while `queued`.
    public var position: Int?
    /// Chunks accepted so far in the current attempt.
    public var chunks: Int
    /// Bytes accepted so far in the current attempt.
    public var bytes: Int64
    /// Hex SHA-256 of the whole image once the function completed.
    public var sha256: String?
    /// The image's media type once known.
    public var contentType: String?
    /// How many times the function was invoked for this job.
    public var attempts: Int
    /// Why the job failed.
    public var error: JobError?
    /// Path of the SSE stream.
    public var events: String
    /// Path of the one-shot image (retrieve mode only).
    public var image: String?

    /// Makes a status.
    public init(
        id: String, function: String, delivery: DeliveryMode, state: JobState, position: Int?, chunks: Int,
        bytes: Int64, sha256: String?, contentType: String?, attempts: Int, error: JobError?, events: String,
        image: String?
    ) {
        self.id = id
        self.function = function
        self.delivery = delivery
        self.state = state
        self.position = position
        self.chunks = chunks
        self.bytes = bytes
        self.sha256 = sha256
        self.contentType = contentType
        self.attempts = attempts
        self.error = error
        self.events = events
        self.image = image
    }
}

/// What a whole image is: chunk count, size, SHA-256 and media type. The function POSTs it to
/// `complete` (and returns it as its invocation response); stream clients get it in `done`.
public struct ImageManifest: Codable, Sendable, Hashable {
    /// Number of chunks.
    public var chunks: Int
    /// Total image size in bytes.
    public var bytes: Int64
    /// Hex SHA-256 of the whole image.
    public var sha256: String
    /// The image's media type, e.g. `image/png`.
    public var contentType: String

    /// Makes a manifest.
    public init(chunks: Int, bytes: Int64, sha256: String, contentType: String) {
        self.chunks = chunks
        self.bytes = bytes
        self.sha256 = sha256
        self.contentType = contentType
    }
}

/// `POST /v1/jobs/{id}/complete` body.
public typealias CompleteRequest = ImageManifest

/// The `done` event's data (stream mode).
public typealias DoneEvent = ImageManifest

/// Body of a successful chunk `PUT`.
public struct ChunkAccepted: Codable, Sendable, Hashable {
    /// The chunk's index.
    public var index: Int
    /// Its size.
    public var bytes: Int
    /// Hex SHA-256 of the chunk.
    public var sha256: String
    /// `false` when an identical chunk was already stored (an idempotent retry).
    public var stored: Bool

    /// Makes a body.
    public init(index: Int, bytes: Int, sha256: String, stored: Bool) {
        self.index = index
        self.bytes = bytes
        self.sha256 = sha256
        self.stored = stored
    }
}

/// The event the gateway invokes a generator function with.
public struct InvocationEvent: Codable, Sendable, Hashable {
    /// The job the function works for.
    public var jobId: String
    /// 1-based attempt number; a retry gets a new attempt and token.
    public var attempt: Int
    /// The client's parameters.
    public var params: [String: JSONValue]
    /// The chunk size cap in bytes: every chunk but the last has exactly this size.
    public var chunkSize: Int
    /// Base URL of this job's ingest endpoints: `{ingestURL}/chunks/{n}` and `{ingestURL}/complete`.
    public var ingestURL: String
    /// Bearer token valid for this attempt only.
    public var uploadToken: String

    /// Makes an event.
    public init(jobId: String, attempt: Int, params: [String: JSONValue], chunkSize: Int, ingestURL: String, uploadToken: String) {
        self.jobId = jobId
        self.attempt = attempt
        self.params = params
        self.chunkSize = chunkSize
        self.ingestURL = ingestURL
        self.uploadToken = uploadToken
    }
}

/// The JSON error body every gateway error has: `{"error": {"code", "message"}}`.
public struct ErrorBody: Codable, Sendable, Hashable {
    /// The error.
    public var error: JobError

    /// Makes a body.
    public init(code: String, message: String) {
        self.error = JobError(code: code, message: message)
    }
}

/// A function the gateway can run, and its Function URL when it has one (`GET /v1/functions`).
public struct FunctionSummary: Codable, Sendable, Hashable {
    /// The function's name, as `CreateJobRequest.function` takes it.
    public var name: String
    /// Its Function URL (direct delivery), when it has one.
    public var url: String?
    /// The URL's invoke mode (`BUFFERED` or `RESPONSE_STREAM`), when it has one.
    public var invokeMode: String?

    /// Makes a summary.
    public init(name: String, url: String? = nil, invokeMode: String? = nil) {
        self.name = name
        self.url = url
        self.invokeMode = invokeMode
    }
}

/// `GET /v1/functions` response.
public struct FunctionList: Codable, Sendable, Hashable {
    /// Every function, by name.
    public var functions: [FunctionSummary]

    /// Makes a list.
    public init(functions: [FunctionSummary]) {
        self.functions = functions
    }
}
