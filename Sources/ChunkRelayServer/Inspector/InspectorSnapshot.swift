import FaultInjection
import Gateway
import LocalRuntime

/// Everything the inspector's page lists, in one read: functions, the queue, recent jobs and
/// invocations, injected faults. Details (a job's timeline, an invocation's log) are read apart.
public struct InspectorSnapshot: Sendable, Codable {
    /// A function as configured, with its URL and environments.
    public struct Function: Sendable, Codable, Hashable {
        /// Its name.
        public var name: String
        /// Its runtime (`provided.al2023`, …).
        public var runtime: String
        /// Its handler.
        public var handler: String
        /// Seconds before it times out.
        public var timeout: Double
        /// Its memory size in MB.
        public var memorySize: Int
        /// Environments at once at most, when limited.
        public var reservedConcurrency: Int?
        /// Retries of an asynchronous invocation.
        public var maximumRetryAttempts: Int
        /// The names of its environment variables (their values may be secrets).
        public var environment: [String]
        /// Its Function URL, once listening.
        public var url: String?
        /// `BUFFERED` or `RESPONSE_STREAM`.
        public var invokeMode: String?
        /// Environments running.
        public var live: Int
        /// Of those, waiting warm.
        public var warm: Int
    }

    /// What changes under the page: it redraws when this moves.
    public var version: Int
    /// Whether the servers honour fault headers.
    public var faultsOn: Bool
    /// The functions.
    public var functions: [Function]
    /// Queued jobs, front first.
    public var queue: [InspectedJob]
    /// Recent jobs, newest first.
    public var jobs: [InspectedJob]
    /// Recent invocations, newest first (logs and payloads in the detail).
    public var invocations: [InvocationLog.Record]
    /// Faults injected, newest first.
    public var faults: [InjectedFault]
}
