import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// A client of the AWS Lambda Runtime API (`/2018-06-01/runtime/...`) at `AWS_LAMBDA_RUNTIME_API`.
public struct RuntimeAPIClient: Sendable {
    /// One invocation as `GET .../invocation/next` hands it out.
    public struct Invocation: Sendable {
        /// The event payload.
        public var event: ByteBuffer
        /// The invocation's metadata.
        public var context: InvocationContext
    }

    private let baseURL: String
    let endpoint: String
    private let httpClient: HTTPClient
    let logger: Logger

    /// Largest event accepted from `next`; the runtime never sends more than a buffered payload.
    static let maximumEvent = 6 << 20 + 100

    /// Makes a client for the endpoint `host:port` (the value of `AWS_LAMBDA_RUNTIME_API`).
    public init(endpoint: String, httpClient: HTTPClient = .shared, logger: Logger) {
        self.baseURL = "http://\(endpoint)/2018-06-01/runtime"
        self.endpoint = endpoint
        self.httpClient = httpClient
        self.logger = logger
    }

    /// Long-polls for the next invocation.
    public func next() async throws -> Invocation {
        let request = HTTPClientRequest(url: "\(baseURL)/invocation/next")
        // No timeout: an idle environment waits here until the runtime has work or stops it.
        let response = try await httpClient.execute(request, deadline: .distantFuture, logger: logger)
        let body = try await response.body.collect(upTo: Self.maximumEvent)
        guard response.status == .ok else {
            throw RuntimeAPIError(status: Int(response.status.code), body: String(buffer: body))
        }
        let headers = response.headers
        guard let requestID = headers.first(name: "Lambda-Runtime-Aws-Request-Id") else {
            throw RuntimeAPIError(status: Int(response.status.code), body: "next: missing Lambda-Runtime-Aws-Request-Id")
        }
        let context = InvocationContext(
            requestID: requestID,
            deadlineMilliseconds: headers.first(name: "Lambda-Runtime-Deadline-Ms").flatMap { Int64($0) } ?? Int64.max,
            invokedFunctionARN: headers.first(name: "Lambda-Runtime-Invoked-Function-Arn") ?? "",
            traceID: headers.first(name: "Lambda-Runtime-Trace-Id"),
            clientContext: headers.first(name: "Lambda-Runtime-Client-Context"),
            cognitoIdentity: headers.first(name: "Lambda-Runtime-Cognito-Identity"),
            logger: logger
        )
        return Invocation(event: body, context: context)
    }

    /// Sends an invocation's response.
    public func respond(requestID: String, body: ByteBuffer) async throws {
        try await post("\(baseURL)/invocation/\(requestID)/response", body: body, errorType: nil)
    }

    /// Reports that an invocation failed.
    public func reportError(requestID: String, _ error: FunctionError) async throws {
        try await post("\(baseURL)/invocation/\(requestID)/error", body: error.jsonBody, errorType: error.errorType)
    }

    /// Reports that initialisation failed; the runtime then ends this environment.
    public func reportInitError(_ error: FunctionError) async throws {
        try await post("\(baseURL)/init/error", body: error.jsonBody, errorType: error.errorType)
    }

    private func post(_ url: String, body: ByteBuffer, errorType: String?) async throws {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.body = .bytes(body)
        if let errorType { request.headers.add(name: "Lambda-Runtime-Function-Error-Type", value: errorType) }
        let response = try await httpClient.execute(request, timeout: .seconds(30), logger: logger)
        let text = try await response.body.collect(upTo: 64 << 10)
        guard (200..<300).contains(Int(response.status.code)) else {
            throw RuntimeAPIError(status: Int(response.status.code), body: String(buffer: text))
        }
    }
}

/// A Runtime API call that the runtime refused.
public struct RuntimeAPIError: Error, CustomStringConvertible, Sendable {
    /// HTTP status.
    public var status: Int
    /// Response body.
    public var body: String
    /// A readable summary.
    public var description: String { "Runtime API answered \(status): \(body)" }
}

/// A function error in Lambda's shape: `{"errorMessage", "errorType", "stackTrace"}`.
public struct FunctionError: Error, Sendable, CustomStringConvertible {
    /// The error's type name, e.g. `UploadError`.
    public var errorType: String
    /// What went wrong.
    public var errorMessage: String

    /// Makes an error.
    public init(errorType: String, errorMessage: String) {
        self.errorType = errorType
        self.errorMessage = errorMessage
    }

    /// Describes any thrown error the way Lambda runtimes do: type name and description.
    public init(_ error: any Error) {
        if let error = error as? FunctionError {
            self = error
        } else {
            self.init(errorType: String(describing: type(of: error)), errorMessage: String(describing: error))
        }
    }

    /// A readable summary.
    public var description: String { "\(errorType): \(errorMessage)" }

    var jsonBody: ByteBuffer {
        let object: [String: any Sendable] = ["errorType": errorType, "errorMessage": errorMessage, "stackTrace": [String]()]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return ByteBuffer(bytes: data)
    }
}
