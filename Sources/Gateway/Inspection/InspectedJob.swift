import RelayProtocol

/// A job as the inspector shows it: never its upload token, and its image key cut short.
public struct InspectedJob: Sendable, Codable, Hashable {
    /// The job id.
    public var id: String
    /// Its function.
    public var function: String
    /// `retrieve` or `stream`.
    public var delivery: String
    /// Its state.
    public var state: String
    /// Its attempt (0 before the first).
    public var attempt: Int
    /// 1-based place in the queue, while queued.
    public var position: Int?
    /// When it was created, became ready and finished (seconds since 1970).
    public var createdAt: Double
    /// When its image was ready.
    public var readyAt: Double?
    /// When it finished (consumed, failed, cancelled, expired).
    public var finishedAt: Double?
    /// Chunks stored so far (the total once complete).
    public var chunks: Int
    /// Bytes stored so far (the total once complete).
    public var bytes: Int64
    /// The image's SHA-256 once verified.
    public var sha256: String?
    /// Why it failed.
    public var error: JobError?
    /// The image's path with its key cut short (`/v1/images/ifxu…`): a key is a capability.
    public var image: String?
    /// Bytes of the image delivered to clients so far (retrieve mode).
    public var delivered: Int64
}

/// One job in full: what `InspectedJob` says, its params, and its timeline.
public struct InspectedJobDetail: Sendable, Codable, Hashable {
    /// The summary.
    public var job: InspectedJob
    /// The params it was created with.
    public var params: [String: JSONValue]
    /// Every move this instance saw, oldest first (chunks stored, attempts, transfers).
    public var timeline: [JobActivity.Entry]
}
