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

    static func make(for environment: ExecutionEnvironment) -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
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
            let completion: ExecutionEnvironment.Completion
            let tooLarge: Bool
            do {
                completion = .response(try await request.body.collect(upTo: environment.function.maximumPayloadBytes))
                tooLarge = false
            } catch {
                // Lambda answers the invoker with this error type when a response breaks the buffered limit.
                completion = .error(
                    type: "Function.ResponseSizeTooLarge",
                    payload: LambdaErrorPayload.make(
                        type: "Function.ResponseSizeTooLarge",
                        message: "Response payload size exceeded maximum allowed payload size (\(environment.function.maximumPayloadBytes) bytes)."
                    )
                )
                tooLarge = true
            }
            guard environment.complete(requestID: requestID, with: completion) else {
                return status(.badRequest, type: "InvalidRequestID", message: "Invalid request ID")
            }
            if tooLarge {
                return status(.contentTooLarge, type: "RequestEntityTooLarge", message: "response payload exceeds \(environment.function.maximumPayloadBytes) bytes")
            }
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

    private static func accepted() -> Response {
        Response(status: .accepted, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: #"{"status":"OK"}"#)))
    }

    private static func status(_ status: HTTPResponse.Status, type: String, message: String) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: LambdaErrorPayload.make(type: type, message: message)))
    }
}
