import Foundation
import Logging

/// What the Runtime API tells a function about one invocation (its `Lambda-Runtime-*` headers).
public struct InvocationContext: Sendable {
    /// `Lambda-Runtime-Aws-Request-Id`.
    public var requestID: String
    /// `Lambda-Runtime-Deadline-Ms`: milliseconds since the Unix epoch when the invocation times out.
    public var deadlineMilliseconds: Int64
    /// `Lambda-Runtime-Invoked-Function-Arn`.
    public var invokedFunctionARN: String
    /// `Lambda-Runtime-Trace-Id`.
    public var traceID: String?
    /// `Lambda-Runtime-Client-Context`, when the invoker sent one.
    public var clientContext: String?
    /// `Lambda-Runtime-Cognito-Identity`, when the invoker sent one.
    public var cognitoIdentity: String?
    /// A logger tagged with the request id.
    public var logger: Logger

    /// Makes a context.
    public init(
        requestID: String, deadlineMilliseconds: Int64, invokedFunctionARN: String, traceID: String? = nil,
        clientContext: String? = nil, cognitoIdentity: String? = nil, logger: Logger
    ) {
        self.requestID = requestID
        self.deadlineMilliseconds = deadlineMilliseconds
        self.invokedFunctionARN = invokedFunctionARN
        self.traceID = traceID
        self.clientContext = clientContext
        self.cognitoIdentity = cognitoIdentity
        var logger = logger
        logger[metadataKey: "aws-request-id"] = .string(requestID)
        self.logger = logger
    }

    /// Time left before the platform stops the invocation.
    public var remainingTime: Duration {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        return .milliseconds(deadlineMilliseconds - now)
    }
}
