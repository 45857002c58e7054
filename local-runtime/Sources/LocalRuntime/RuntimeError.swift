/// Why the local runtime could not do what was asked (as opposed to a function failing).
public struct RuntimeError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        /// No function with that name.
        public static let functionNotFound = Code(name: "ResourceNotFoundException")
        /// A `function.json` is invalid.
        public static let invalidConfiguration = Code(name: "InvalidConfiguration")
        /// The function's executable could not be found or built.
        public static let buildFailed = Code(name: "BuildFailed")
        /// The request payload is over the platform limit.
        public static let requestTooLarge = Code(name: "RequestEntityTooLargeException")
        /// Concurrency limit reached for a synchronous invoke.
        public static let tooManyRequests = Code(name: "TooManyRequestsException")
        /// The caller cancelled the invocation.
        public static let cancelled = Code(name: "Cancelled")
        /// The runtime is shutting down.
        public static let shuttingDown = Code(name: "ServiceException")
        /// The AWS error type name.
        public var description: String { name }
    }

    /// The kind of failure.
    public var code: Code
    /// A readable explanation.
    public var message: String

    /// Makes an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// A readable summary.
    public var description: String { "\(code): \(message)" }

    /// `ResourceNotFoundException` for `name`, with the message AWS gives.
    static func functionNotFound(_ name: String) -> RuntimeError {
        RuntimeError(.functionNotFound, "Function not found: \(RuntimeConfiguration.arn(name))")
    }
}
