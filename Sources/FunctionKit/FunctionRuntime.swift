import AsyncHTTPClient
import Foundation
import Logging
import NIOCore

/// A function's handler: one event in, one response out.
public protocol FunctionHandler: Sendable {
    /// Handles one invocation; a thrown error is reported to the Runtime API as a function error.
    func handle(_ event: ByteBuffer, context: InvocationContext) async throws -> ByteBuffer
}

/// A handler made from a closure.
public struct ClosureFunctionHandler: FunctionHandler {
    private let body: @Sendable (ByteBuffer, InvocationContext) async throws -> ByteBuffer

    /// Wraps `body`.
    public init(_ body: @escaping @Sendable (ByteBuffer, InvocationContext) async throws -> ByteBuffer) {
        self.body = body
    }

    /// Calls the closure.
    public func handle(_ event: ByteBuffer, context: InvocationContext) async throws -> ByteBuffer {
        try await body(event, context)
    }
}

/// The Lambda Runtime API loop: fetch an invocation, run the handler, post its response or error, repeat.
///
/// ```swift
/// try await FunctionRuntime { event, context in
///     ByteBuffer(string: "hello")
/// }.run()
/// ```
public struct FunctionRuntime<Handler: FunctionHandler>: Sendable {
    private let handler: Handler
    private let logger: Logger

    /// Makes a runtime around `handler`.
    public init(handler: Handler, logger: Logger = Logger(label: "function")) {
        self.handler = handler
        self.logger = logger
    }

    /// Makes a runtime around a closure.
    public init(
        logger: Logger = Logger(label: "function"),
        _ body: @escaping @Sendable (ByteBuffer, InvocationContext) async throws -> ByteBuffer
    ) where Handler == ClosureFunctionHandler {
        self.init(handler: ClosureFunctionHandler(body), logger: logger)
    }

    /// Runs until the Runtime API goes away (the environment is being shut down).
    ///
    /// Reads `AWS_LAMBDA_RUNTIME_API` once, as the Lambda runtimes do.
    public func run() async throws {
        guard let endpoint = ProcessInfo.processInfo.environment["AWS_LAMBDA_RUNTIME_API"], !endpoint.isEmpty else {
            throw FunctionError(errorType: "Runtime.MissingEnvironment", errorMessage: "AWS_LAMBDA_RUNTIME_API is not set")
        }
        try await run(client: RuntimeAPIClient(endpoint: endpoint, logger: logger))
    }

    /// Runs against a given Runtime API client.
    public func run(client: RuntimeAPIClient) async throws {
        while !Task.isCancelled {
            let invocation: RuntimeAPIClient.Invocation
            do {
                invocation = try await client.next()
            } catch let error as HTTPClientError where error == .remoteConnectionClosed || error == .connectTimeout {
                // The runtime closed the endpoint: this environment is being shut down.
                logger.debug("runtime API closed; exiting")
                return
            }
            let response: ByteBuffer
            do {
                response = try await handler.handle(invocation.event, context: invocation.context)
            } catch {
                invocation.context.logger.error("invocation failed: \(error)")
                try await client.reportError(requestID: invocation.context.requestID, FunctionError(error))
                continue
            }
            do {
                try await client.respond(requestID: invocation.context.requestID, body: response)
            } catch let error as RuntimeAPIError where (400..<500).contains(error.status) {
                // The runtime refused the response (too large, for one) and has failed the invocation
                // itself; the environment stays usable, as on Lambda.
                invocation.context.logger.error("response refused: \(error)")
            }
        }
    }
}
