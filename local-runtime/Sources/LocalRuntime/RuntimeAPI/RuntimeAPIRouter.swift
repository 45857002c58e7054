import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import RelayProtocol

/// The AWS Lambda Runtime API (`/2018-06-01/runtime/...`) for one execution environment.
enum RuntimeAPIRouter {
    static let requestIDHeader = HTTPField.Name("Lambda-Runtime-Aws-Request-Id")!
    static let deadlineHeader = HTTPField.Name("Lambda-Runtime-Deadline-Ms")!
    static let functionARNHeader = HTTPField.Name("Lambda-Runtime-Invoked-Function-Arn")!
    static let traceIDHeader = HTTPField.Name("Lambda-Runtime-Trace-Id")!
    static let clientContextHeader = HTTPField.Name("Lambda-Runtime-Client-Context")!
    static let errorTypeHeader = HTTPField.Name("Lambda-Runtime-Function-Error-Type")!
    static let errorBodyHeader = HTTPField.Name("Lambda-Runtime-Function-Error-Body")!
    static let responseModeHeader = HTTPField.Name("Lambda-Runtime-Function-Response-Mode")!

    static func make(for environment: ExecutionEnvironment) -> Router<RuntimeAPIContext> {
        let router = Router(context: RuntimeAPIContext.self)
        let arn = environment.function.arn(region: RuntimeConfiguration.region, account: RuntimeConfiguration.account)
        router.get("/2018-06-01/runtime/invocation/next") { _, _ -> Response in
            guard let assignment = await environment.nextInvocation() else {
                return status(.gone, type: "EnvironmentShutdown", message: "the execution environment is shutting down")
            }
            var headers: HTTPFields = [
                .contentType: "application/json",
                requestIDHeader: assignment.requestID,
                deadlineHeader: String(assignment.deadlineMilliseconds),
                functionARNHeader: arn,
                traceIDHeader: assignment.traceID,
            ]
            if let clientContext = assignment.clientContext { headers[clientContextHeader] = clientContext }
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: assignment.payload))
        }
        router.post("/2018-06-01/runtime/invocation/{requestID}/response") { request, context -> Response in
            let requestID = try context.parameters.require("requestID")
            if request.headers[responseModeHeader]?.lowercased() == "streaming" {
                return try await streamedResponse(request, requestID: requestID, channel: context.channel, environment: environment)
            }
            let completion: ExecutionEnvironment.Completion
            let tooLarge: Bool
            do {
                completion = .response(try await request.body.collect(upTo: environment.function.maximumPayloadBytes))
                tooLarge = false
            } catch {
                completion = responseTooLarge(limit: environment.function.maximumPayloadBytes)
                tooLarge = true
            }
            guard environment.complete(requestID: requestID, with: completion) else {
                return status(.badRequest, type: "InvalidRequestID", message: "Invalid request ID")
            }
            if tooLarge { return tooLargeStatus(limit: environment.function.maximumPayloadBytes) }
            return accepted()
        }
        router.post("/2018-06-01/runtime/invocation/{requestID}/error") { request, context -> Response in
            let requestID = try context.parameters.require("requestID")
            let body = try await request.body.collect(upTo: RelayLimits.lambdaBufferedPayload)
            let type = request.headers[errorTypeHeader] ?? "Unhandled"
            guard environment.complete(requestID: requestID, with: .error(type: type, payload: body)) else {
                return status(.badRequest, type: "InvalidRequestID", message: "Invalid request ID")
            }
            return accepted()
        }
        router.post("/2018-06-01/runtime/init/error") { request, _ -> Response in
            let body = try await request.body.collect(upTo: RelayLimits.lambdaBufferedPayload)
            environment.initFailed(errorType: request.headers[errorTypeHeader] ?? "Runtime.Unknown", payload: body)
            return accepted()
        }
        return router
    }

    /// A response in Lambda's streaming mode: a chunked body, forwarded as it arrives to an invoker that
    /// streams (or collected up to the buffered limit for one that does not), and an error, if any, in
    /// the trailers `Lambda-Runtime-Function-Error-Type` and `-Body` (base64 of the error JSON).
    private static func streamedResponse(
        _ request: Request, requestID: String, channel: any Channel, environment: ExecutionEnvironment
    ) async throws -> Response {
        guard let target = environment.streamTarget(for: requestID) else {
            return status(.badRequest, type: "InvalidRequestID", message: "Invalid request ID")
        }
        let function = environment.function
        var sink: ResponseStreamSink?
        let limit: Int
        switch target {
        case .forward(let forward):
            sink = forward
            limit = function.maximumStreamingPayloadBytes
            await forward.begin(request.headers[.contentType])
        case .collect:
            limit = function.maximumPayloadBytes
        }
        var collected = ByteBuffer()
        var total = 0
        var pacer = function.awsStreamingBandwidth ? StreamingBandwidth.Pacer(.aws) : nil
        do {
            for try await piece in request.body {
                total += piece.readableBytes
                guard total <= limit else {
                    _ = environment.complete(requestID: requestID, with: responseTooLarge(limit: limit))
                    return tooLargeStatus(limit: limit)
                }
                if let forward = sink {
                    if let wait = pacer?.delay(reaching: total, at: .now), wait > .zero { try await Task.sleep(for: wait) }
                    do {
                        try await forward.write(piece)
                    } catch {
                        // The invoker went away; the function finishes its response unheard, as on Lambda.
                        sink = nil
                    }
                } else if case .collect = target {
                    collected.writeImmutableBuffer(piece)
                }
            }
        } catch {
            _ = environment.complete(
                requestID: requestID,
                with: .error(type: "Runtime.TruncatedResponse", payload: LambdaErrorPayload.make(type: "Runtime.TruncatedResponse", message: "the response stream broke off: \(error)"))
            )
            throw error
        }
        let trailers = try await TrailerCapture.box(on: channel).value
        let completion: ExecutionEnvironment.Completion
        if let type = trailers?[errorTypeHeader] {
            let body = trailers?[errorBodyHeader]
                .flatMap { Data(base64Encoded: $0) }
                .map { ByteBuffer(bytes: $0) }
            completion = .error(type: type, payload: body ?? LambdaErrorPayload.make(type: type, message: "the function reported \(type) mid-stream"))
        } else {
            completion = .response(collected)
        }
        guard environment.complete(requestID: requestID, with: completion) else {
            return status(.badRequest, type: "InvalidRequestID", message: "Invalid request ID")
        }
        return accepted()
    }

    /// What the invoker hears when a response breaks its limit: Lambda's own error type and message.
    private static func responseTooLarge(limit: Int) -> ExecutionEnvironment.Completion {
        .error(
            type: "Function.ResponseSizeTooLarge",
            payload: LambdaErrorPayload.make(
                type: "Function.ResponseSizeTooLarge", message: "Response payload size exceeded maximum allowed payload size (\(limit) bytes)."
            )
        )
    }

    private static func tooLargeStatus(limit: Int) -> Response {
        status(.contentTooLarge, type: "RequestEntityTooLarge", message: "response payload exceeds \(limit) bytes")
    }

    private static func accepted() -> Response {
        Response(status: .accepted, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: #"{"status":"OK"}"#)))
    }

    private static func status(_ status: HTTPResponse.Status, type: String, message: String) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: LambdaErrorPayload.make(type: type, message: message)))
    }
}
