/// The stable, machine-readable code of a `GatewayError` (`{"error": {"code"}}`): callers and tests
/// compare codes, never strings, and the JSON carries `rawValue`.
public struct GatewayErrorCode: Hashable, Sendable, CustomStringConvertible {
    /// The code as the JSON body carries it.
    public let rawValue: String

    private init(_ rawValue: String) { self.rawValue = rawValue }

    /// The code as the JSON body carries it.
    public var description: String { rawValue }

    /// A code of Hummingbird's own errors that has no name of ours (`http_STATUS`).
    static func http(_ status: Int) -> GatewayErrorCode { GatewayErrorCode("http_\(status)") }

    /// A JSON body over its limit.
    public static let bodyTooLarge = GatewayErrorCode("body_too_large")
    /// The chunk index holds another digest.
    public static let chunkConflict = GatewayErrorCode("chunk_conflict")
    /// A chunk of the attempt is still being written.
    public static let chunkInFlight = GatewayErrorCode("chunk_in_flight")
    /// The chunk is stored already.
    public static let chunkStored = GatewayErrorCode("chunk_stored")
    /// A chunk over the cap.
    public static let chunkTooLarge = GatewayErrorCode("chunk_too_large")
    /// Bytes that do not match their digest.
    public static let digestMismatch = GatewayErrorCode("digest_mismatch")
    /// No function of that name.
    public static let functionNotFound = GatewayErrorCode("function_not_found")
    /// A request head over the limit.
    public static let headersTooLarge = GatewayErrorCode("headers_too_large")
    /// The image was retrieved.
    public static let imageConsumed = GatewayErrorCode("image_consumed")
    /// The image expired unretrieved.
    public static let imageExpired = GatewayErrorCode("image_expired")
    /// Another transfer of the image runs.
    public static let imageInFlight = GatewayErrorCode("image_in_flight")
    /// No image with that key.
    public static let imageNotFound = GatewayErrorCode("image_not_found")
    /// The image is not ready yet.
    public static let imageNotReady = GatewayErrorCode("image_not_ready")
    /// The job has no image.
    public static let imageUnavailable = GatewayErrorCode("image_unavailable")
    /// The state folder's disk is short of space (`--min-free-space`) or full.
    public static let insufficientStorage = GatewayErrorCode("insufficient_storage")
    /// Chunks announced but not stored.
    public static let incomplete = GatewayErrorCode("incomplete")
    /// A status asked for with `X-ChunkRelay-Fault` or a fault rule (`serve --faults`).
    public static let injectedFault = GatewayErrorCode("injected_fault")
    /// The inspector answers loopback clients, and others only with its token.
    public static let inspectorForbidden = GatewayErrorCode("inspector_forbidden")
    /// No invocation with that request id in the inspector's memory.
    public static let invocationNotFound = GatewayErrorCode("invocation_not_found")
    /// The gateway failed (details in its log only).
    public static let internalError = GatewayErrorCode("internal_error")
    /// A configuration value out of range.
    public static let invalidConfiguration = GatewayErrorCode("invalid_configuration")
    /// A malformed `Content-Digest`.
    public static let invalidDigest = GatewayErrorCode("invalid_digest")
    /// An `X-ChunkRelay-Fault` header that cannot be read.
    public static let invalidFault = GatewayErrorCode("invalid_fault")
    /// A chunk index out of range.
    public static let invalidIndex = GatewayErrorCode("invalid_index")
    /// A `Last-Event-ID` that is not a chunk event id.
    public static let invalidLastEventId = GatewayErrorCode("invalid_last_event_id")
    /// A `complete` body that does not add up.
    public static let invalidManifest = GatewayErrorCode("invalid_manifest")
    /// A malformed or incomplete JSON request.
    public static let invalidRequest = GatewayErrorCode("invalid_request")
    /// A missing or wrong upload token.
    public static let invalidToken = GatewayErrorCode("invalid_token")
    /// The job is still in use.
    public static let jobBusy = GatewayErrorCode("job_busy")
    /// The job has ended.
    public static let jobFinished = GatewayErrorCode("job_finished")
    /// No job with that id.
    public static let jobNotFound = GatewayErrorCode("job_not_found")
    /// The job is not running.
    public static let jobNotRunning = GatewayErrorCode("job_not_running")
    /// Bytes that are not HTTP/1.1.
    public static let malformedRequest = GatewayErrorCode("malformed_request")
    /// A method the path does not take.
    public static let methodNotAllowed = GatewayErrorCode("method_not_allowed")
    /// No `Content-Digest`.
    public static let missingDigest = GatewayErrorCode("missing_digest")
    /// No such path.
    public static let notFound = GatewayErrorCode("not_found")
    /// The queue is full.
    public static let queueFull = GatewayErrorCode("queue_full")
    /// A byte range outside the image.
    public static let rangeNotSatisfiable = GatewayErrorCode("range_not_satisfiable")
    /// Over the connection limit.
    public static let serverBusy = GatewayErrorCode("server_busy")
    /// A short chunk that is not the last.
    public static let shortChunk = GatewayErrorCode("short_chunk")
    /// The gateway is draining.
    public static let shuttingDown = GatewayErrorCode("shutting_down")
    /// Bytes announced and stored differ.
    public static let sizeMismatch = GatewayErrorCode("size_mismatch")
    /// The store cannot be reached or written.
    public static let storeUnavailable = GatewayErrorCode("store_unavailable")
    /// A finished stream whose chunks are gone.
    public static let streamExpired = GatewayErrorCode("stream_expired")
}
