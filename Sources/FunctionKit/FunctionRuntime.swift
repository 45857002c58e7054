import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import Synchronization

/// A function's handler: one event in, one response out.
public protocol FunctionHandler: Sendable {
    /// Handles one invocation; a thrown error is reported to the Runtime API as a function error.
    func handle(_ event: ByteBuffer, context: InvocationContext) async throws -> ByteBuffer
    /// Answers one invocation, buffered or streamed; by default the buffered `handle`.
    func respond(to event: ByteBuffer, context: InvocationContext) async throws -> FunctionResponse
}

extension FunctionHandler {
    /// A buffered response from `handle`.
    public func respond(to event: ByteBuffer, context: InvocationContext) async throws -> FunctionResponse {
        .buffered(try await handle(event, context: context))
    }
}

/// A handler made from a closure.
public struct ClosureFunctionHandler: FunctionHandler {
    private let body: @Sendable (ByteBuffer, InvocationContext) async throws -> FunctionResponse

    /// Wraps `body`.
    public init(_ body: @escaping @Sendable (ByteBuffer, InvocationContext) async throws -> ByteBuffer) {
        self.body = { event, context in .buffered(try await body(event, context)) }
    }

    /// Wraps `body`, which may answer with a stream.
    public init(responding body: @escaping @Sendable (ByteBuffer, InvocationContext) async throws -> FunctionResponse) {
        self.body = body
    }

    /// Calls the closure; a streamed answer is collected.
    public func handle(_ event: ByteBuffer, context: InvocationContext) async throws -> ByteBuffer {
        switch try await body(event, context) {
        case .buffered(let buffer):
            return buffer
        case .streamed(_, let write):
            let collected = Collected()
            try await write(ResponseStreamWriter { bytes in collected.append(bytes) })
            return collected.buffer
        }
    }

    /// Calls the closure.
    public func respond(to event: ByteBuffer, context: InvocationContext) async throws -> FunctionResponse {
        try await body(event, context)
    }

    private final class Collected: Sendable {
        private let storage = Mutex(ByteBuffer())
        func append(_ bytes: ByteBuffer) { storage.withLock { _ = $0.writeImmutableBuffer(bytes) } }
        var buffer: ByteBuffer { storage.withLock { $0 } }
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

    /// Makes a runtime around a closure that may answer with a stream.
    public init(
        logger: Logger = Logger(label: "function"),
        responding body: @escaping @Sendable (ByteBuffer, InvocationContext) async throws -> FunctionResponse
    ) where Handler == ClosureFunctionHandler {
        self.init(handler: ClosureFunctionHandler(responding: body), logger: logger)
    }

    /// Runs until the Runtime API goes away (the environment is being shut down).
    ///
    /// Reads `AWS_LAMBDA_RUNTIME_API` once, as the Lambda runtimes do.
    public func run() async throws {
        guard let endpoint = ProcessInfo.processInfo.environment["AWS_LAMBDA_RUNTIME_API"], !endpoint.isEmpty else {
            throw FunctionError(errorType: "Runtime.MissingEnvironment", errorMessage: "AWS_LAMBDA_RUNTIME_API is not set")
        }
        let client = RuntimeAPIClient(endpoint: endpoint, logger: logger)
        // The runtime says who it is: a function whose runtime died while starting it (between the spawn and
        // this line) already has another parent here, and must not take that one for its runtime.
        let parent = ProcessInfo.processInfo.environment["CHUNKRELAY_RUNTIME_PID"].flatMap { Int32($0) } ?? getppid()
        if parent > 1, getppid() != parent {
            logger.warning("the runtime that started this environment is gone; exiting")
            exit(0)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await run(client: client) }
            if parent > 1 {
                group.addTask {
                    // A runtime killed with SIGKILL cannot stop its functions, and its Runtime API vanishing
                    // does not end a long poll (the HTTP client keeps retrying a refused connection until
                    // the poll's deadline); an orphaned environment ends itself instead.
                    while getppid() == parent { try await Task.sleep(for: .milliseconds(250)) }
                    logger.warning("the runtime that started this environment is gone; exiting")
                    exit(0)
                }
            }
            try await group.next()
            group.cancelAll()
        }
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
            // As AWS's runtime clients do, so an X-Ray or OpenTelemetry SDK in the handler finds the trace.
            // One invocation at a time runs in a process, so the variable is this invocation's throughout.
            if let trace = invocation.context.traceID { setenv("_X_AMZN_TRACE_ID", trace, 1) } else { unsetenv("_X_AMZN_TRACE_ID") }
            let response: FunctionResponse
            do {
                response = try await handler.respond(to: invocation.event, context: invocation.context)
            } catch {
                invocation.context.logger.error("invocation failed: \(error)")
                try await client.reportError(requestID: invocation.context.requestID, FunctionError(error))
                continue
            }
            do {
                switch response {
                case .buffered(let body):
                    try await client.respond(requestID: invocation.context.requestID, body: body)
                case .streamed(let contentType, let body):
                    try await client.respondStreaming(requestID: invocation.context.requestID, contentType: contentType, body: body)
                }
            } catch let error as RuntimeAPIError where (400..<500).contains(error.status) {
                // The runtime refused the response (too large, for one) and has failed the invocation
                // itself; the environment stays usable, as on Lambda.
                invocation.context.logger.error("response refused: \(error)")
            }
        }
    }
}
