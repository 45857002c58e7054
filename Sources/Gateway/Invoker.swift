import RelayProtocol

/// How the gateway starts generator functions; the CLI connects it to the local runtime.
public protocol Invoker: Sendable {
    /// Whether a function of that name exists.
    func hasFunction(named name: String) -> Bool
    /// Invokes the function asynchronously for a job and returns when the invocation has ended.
    func invoke(function: String, event: InvocationEvent) async -> InvocationOutcome
}

/// How an invocation ended, as the gateway needs to know it.
public enum InvocationOutcome: Sendable, Equatable {
    /// The function returned normally.
    case succeeded
    /// The function failed, timed out or could not start.
    case failed(JobError)
}
