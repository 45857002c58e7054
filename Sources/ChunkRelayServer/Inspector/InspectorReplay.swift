import RelayProtocol

/// What a replay started: a new job (for a job, or an invocation that worked for one), or a new
/// asynchronous invocation of the same function with the same event.
public struct InspectorReplay: Sendable, Codable {
    /// `job` or `invocation`.
    public var kind: String
    /// The new job, for a job.
    public var job: JobCreated?
    /// The function invoked again, for an invocation.
    public var function: String?
    /// The new invocation's request id, for an invocation.
    public var requestId: String?
}
