import AsyncAlgorithms
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import RelayProtocol

/// The Lambda Invoke API (`POST /2015-03-31/functions/{name}/invocations`), so an AWS SDK pointed at the
/// runtime port can invoke functions.
public enum InvokeAPIRouter {
    static let invocationType = HTTPField.Name("X-Amz-Invocation-Type")!
    static let functionError = HTTPField.Name("X-Amz-Function-Error")!
    static let executedVersion = HTTPField.Name("X-Amz-Executed-Version")!
    static let clientContext = HTTPField.Name("X-Amz-Client-Context")!
    static let requestID = RuntimeError.requestIDHeader
    static let logType = HTTPField.Name("X-Amz-Log-Type")!
    static let logResult = HTTPField.Name("X-Amz-Log-Result")!

    /// A router serving the Invoke API of `runtime`.
    public static func make(runtime: LocalRuntime) -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: InvokeAPIErrorMiddleware())
        router.post("/2015-03-31/functions/{name}/invocations") { request, context -> Response in
            let name = try resolveName(request, context: context, registry: runtime.registry)
            let type = request.headers[invocationType] ?? "RequestResponse"
            let payload = try await readPayload(request, operation: "InvokeFunction")
                switch type {
                case "Event":
                    let id = try runtime.invokeAsync(name, payload: payload, trace: .continuing(from: request.headers))
                    return Response(status: .accepted, headers: [requestID: id])
                case "DryRun":
                    return try dryRun(name, runtime: runtime)
                case "RequestResponse":
                    let context = decodedClientContext(request)
                    let result = try await runtime.invokeOrThrottle(
                        name, payload: payload, clientContext: context, trace: .continuing(from: request.headers))
                    var headers: HTTPFields = [.contentType: "application/json", executedVersion: "$LATEST", requestID: result.requestID]
                    if !result.succeeded { headers[functionError] = "Unhandled" }
                    if request.headers[logType] == "Tail" {
                        headers[logResult] = result.logTail
                    }
                    return Response(status: .ok, headers: headers, body: .init(byteBuffer: result.payload))
                default:
                    throw RuntimeError(.invalidParameter, "Unsupported invocation type \(type)")
                }
        }
        router.post("/2021-11-15/functions/{name}/response-streaming-invocations") { request, context -> Response in
            let name = try resolveName(request, context: context, registry: runtime.registry)
                let payload = try await readPayload(request, operation: "InvokeWithResponseStream")
                switch request.headers[invocationType] ?? "RequestResponse" {
                case "RequestResponse": break
                case "DryRun":
                    return try dryRun(name, runtime: runtime)
                case let other:
                    throw RuntimeError(.invalidParameter, "Unsupported invocation type \(other)")
                }
                // Claimed before answering, so a function at its concurrency limit is an HTTP 429 as on AWS,
                // not an error inside a 200 stream.
                let reservation = try await runtime.reserve(name, payloadBytes: payload.readableBytes)
                let clientContext = decodedClientContext(request)
                let trace = XRayTraceID.continuing(from: request.headers)
                let tail = request.headers[logType] == "Tail"
                let headers: HTTPFields = [
                    .contentType: EventStreamMessage.contentType, executedVersion: "$LATEST", requestID: UUID().uuidString.lowercased(),
                ]
                return Response(status: .ok, headers: headers, body: ResponseBody { writer in
                    // The function's writes wait on this channel while the response is written out (backpressure).
                    let pieces = AsyncChannel<ByteBuffer>()
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            defer { pieces.finish() }
                            let sink = ResponseStreamSink { piece in await pieces.send(EventStreamMessage.payloadChunk(piece)) }
                            let complete: ByteBuffer
                            do {
                                let result = try await runtime.invoke(reservation, payload: payload, clientContext: clientContext, trace: trace, sink: sink)
                                complete = EventStreamMessage.invokeComplete(
                                    errorCode: result.succeeded ? nil : (result.errorType ?? "Unhandled"),
                                    errorDetails: result.errorMessage,
                                    logResult: tail ? result.logTail : nil
                                )
                            } catch let error as RuntimeError {
                                complete = EventStreamMessage.invokeComplete(errorCode: error.code.description, errorDetails: error.message, logResult: nil)
                            }
                            await pieces.send(complete)
                        }
                        for await piece in pieces { try await writer.write(piece) }
                        try await group.waitForAll()
                    }
                    try await writer.finish(nil)
                })
        }
        addControlPlane(to: router, runtime: runtime)
        return router
    }

    /// The function the path's `FunctionName` and the `Qualifier` parameter name (every form AWS takes),
    /// as the name of one of `registry`'s functions; AWS's error for a form that names none.
    static func resolveName(
        _ request: Request, context: BasicRequestContext, registry: FunctionRegistry, action: String = "InvokeFunction"
    ) throws -> String {
        let raw = try context.parameters.require("name")
        // SDKs percent-encode the `:` of ARNs and the `$` of `$LATEST` in the path.
        let decoded = raw.removingPercentEncoding ?? raw
        let qualifier = request.uri.queryParameters["Qualifier"].map(String.init)  // already decoded
        return try FunctionReference(parsing: decoded, qualifier: qualifier, action: action).resolve(in: registry).name
    }

    /// The request payload, up to the buffered limit (`RequestEntityTooLargeException` beyond it).
    static func readPayload(_ request: Request, operation: String) async throws(RuntimeError) -> ByteBuffer {
        do {
            return try await request.body.collect(upTo: RelayLimits.lambdaBufferedPayload)
        } catch {
            throw RuntimeError(.requestTooLarge, "Request must be smaller than \(RelayLimits.lambdaBufferedPayload) bytes for the \(operation) operation")
        }
    }

    /// `DryRun`: 204 when the function exists.
    static func dryRun(_ name: String, runtime: LocalRuntime) throws(RuntimeError) -> Response {
        guard runtime.registry.function(named: name) != nil else { throw RuntimeError.functionNotFound(name) }
        return Response(status: .noContent, headers: [requestID: UUID().uuidString.lowercased()])
    }

    /// `X-Amz-Client-Context`, which the SDKs send base64-encoded, as the function receives it.
    static func decodedClientContext(_ request: Request) -> String? {
        request.headers[clientContext].flatMap { Data(base64Encoded: $0) }.map { String(decoding: $0, as: UTF8.self) }
    }
}
