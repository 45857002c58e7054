import RelayProtocol

/// How the gateway starts generator functions; the CLI connects it to the local runtime.
public protocol Invoker: Sendable {
    /// Whether a function of that name exists.
    func hasFunction(named name: String) -> Bool
    /// Invocations of the function that may run at once (its reserved concurrency), or nil for no own limit.
    func concurrencyLimit(function: String) -> Int?
    /// Invokes the function asynchronously for a job and returns when the invocation has ended, after
    /// any retries. Before a retry the invoker calls `retry` with the failure; it returns the event of
    /// the next attempt (a new token, the old attempt rolled back) or nil when the job should not be retried.
    /// Cancelling the calling task stops the invocation (the function's process is killed).
    func invoke(
        function: String, event: InvocationEvent, retry: @escaping @Sendable (JobError) async -> InvocationEvent?
    ) async -> InvocationOutcome
    /// Sizes of the invoker's own structures (waiting invocations, live environments), for `/metrics`.
    func gauges() -> [String: Int]
    /// The functions it runs and their Function URLs, for `GET /v1/functions`.
    func functions() -> [FunctionSummary]
}

extension Invoker {
    /// No gauges by default.
    public func gauges() -> [String: Int] { [:] }
    /// None listed by default.
    public func functions() -> [FunctionSummary] { [] }
}

/// How an invocation ended, as the gateway needs to know it.
public enum InvocationOutcome: Sendable, Equatable {
    /// The function returned normally.
    case succeeded
    /// The function failed, timed out or could not start.
    case failed(JobError)
}
