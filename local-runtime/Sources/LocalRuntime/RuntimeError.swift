import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Why the local runtime could not do what was asked (as opposed to a function failing); on the Invoke
/// API it is answered in AWS's error shape (`InvokeAPIErrorMiddleware`).
public struct RuntimeError: Error, CustomStringConvertible, Sendable, Equatable, HTTPResponseError {
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
        /// The function's process could not be started (no such executable, not executable).
        public static let startFailed = Code(name: "Runtime.StartError")
        /// A parameter of the request is not one the API takes.
        public static let invalidParameter = Code(name: "InvalidParameterValueException")
        /// A parameter fails its API model's constraint (pattern, length).
        public static let validation = Code(name: "ValidationException")
        /// The caller may not act on that resource (another account's function).
        public static let accessDenied = Code(name: "AccessDeniedException")
        /// No operation at that path.
        public static let unknownOperation = Code(name: "UnknownOperationException")
        /// The runtime is shutting down.
        public static let shuttingDown = Code(name: "ServiceException")
        /// The AWS error type name.
        public var description: String { name }
    }

    /// The kind of failure.
    public var code: Code
    /// A readable explanation.
    public var message: String

    /// A throttle's `Reason` (`ReservedFunctionConcurrentInvocationLimitExceeded`, …), as AWS adds it.
    public var reason: String?

    /// Makes an error.
    public init(_ code: Code, _ message: String, reason: String? = nil) {
        self.code = code
        self.message = message
        self.reason = reason
    }

    /// The HTTP status AWS answers this error with.
    public var status: HTTPResponse.Status {
        switch code {
        case .functionNotFound, .unknownOperation: return .notFound
        case .requestTooLarge: return .contentTooLarge
        case .tooManyRequests: return .tooManyRequests
        case .invalidParameter, .validation: return .badRequest
        case .accessDenied: return .forbidden
        default: return .internalServerError
        }
    }

    /// The error as AWS's REST-JSON services send it: `x-amzn-ErrorType` and `{"Type", "message", "Reason"}`.
    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let type = status == .internalServerError ? "ServiceException" : code.description
        var headers: HTTPFields = [.contentType: "application/json", Self.errorTypeHeader: type, Self.requestIDHeader: UUID().uuidString.lowercased()]
        if code == .tooManyRequests { headers[.retryAfter] = "1" }
        var object = ["Type": status.code < 500 ? "User" : "Service", "message": message]
        if let reason { object["Reason"] = reason }
        let body = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    static let errorTypeHeader = HTTPField.Name("x-amzn-ErrorType")!
    static let requestIDHeader = HTTPField.Name("x-amzn-RequestId")!

    /// A readable summary.
    public var description: String { "\(code): \(message)" }

    /// `TooManyRequestsException` for a function whose every allowed environment is busy, with AWS's reason.
    static func throttled(_ function: FunctionConfiguration) -> RuntimeError {
        let reason = function.reservedConcurrency == nil ? "ConcurrentInvocationLimitExceeded" : "ReservedFunctionConcurrentInvocationLimitExceeded"
        return RuntimeError(.tooManyRequests, "Rate Exceeded.", reason: reason)
    }

    /// `ResourceNotFoundException` for `name`, with the message AWS gives.
    static func functionNotFound(_ name: String) -> RuntimeError {
        RuntimeError(.functionNotFound, "Function not found: \(RuntimeConfiguration.arn(name))")
    }
}
