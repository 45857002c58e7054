import FaultInjection
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import RelayProtocol

/// A Function URL: every request to its server, whatever the method and path, is one invocation of the
/// function with a payload format 2.0 event, answered as Lambda answers (`BUFFERED` or `RESPONSE_STREAM`).
struct FunctionURLResponder: HTTPResponder {
    typealias Context = RuntimeAPIContext

    let runtime: LocalRuntime
    let function: FunctionConfiguration
    let config: FunctionURLConfig
    let urlID: String

    /// The responder for `function`'s URL; nil when it has none.
    init?(runtime: LocalRuntime, function: FunctionConfiguration) {
        guard let config = function.url else { return nil }
        self.runtime = runtime
        self.function = function
        self.config = config
        self.urlID = FunctionURLConfig.urlID(for: function.name)
    }

    /// Answers one request.
    func respond(to request: Request, context: RuntimeAPIContext) async throws -> Response {
        if let faults = runtime.configuration.faults, let refusal = await injectFault(faults, request, context: context) {
            return Self.response(refusal)
        }
        let origin = request.headers[.origin]
        if let cors = config.cors, request.method == .options, request.headers[.accessControlRequestMethod] != nil {
            return Response(status: .ok, headers: cors.preflight(origin: origin))
        }
        var answer = try await answer(request, context: context)
        config.cors?.apply(to: &answer.headers, origin: origin)
        return answer
    }

    private func answer(_ request: Request, context: RuntimeAPIContext) async throws -> Response {
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: RelayLimits.lambdaBufferedPayload)
        } catch {
            return Self.response(FunctionURLResponse.lambdaError(
                .contentTooLarge, type: "RequestEntityTooLargeException",
                message: "Request must be smaller than \(RelayLimits.lambdaBufferedPayload) bytes for the InvokeFunction operation"
            ))
        }
        let trace = XRayTraceID.continuing(from: request.headers)
        let event = FunctionURLEvent.make(FunctionURLEvent.Request(
            method: request.method.rawValue, target: request.uri.description, headers: request.headers, body: body,
            sourceIP: context.channel.remoteAddress?.ipAddress ?? "127.0.0.1", urlID: urlID,
            requestID: UUID().uuidString.lowercased(), now: Date(), trace: trace
        ))
        do {
            switch config.invokeMode {
            case .buffered:
                let result = try await runtime.invokeOrThrottle(function.name, payload: event, trace: trace)
                return Self.response(Self.buffered(result))
            case .responseStream:
                return try await streamed(event, trace: trace)
            }
        } catch let error as RuntimeError {
            return Self.response(Self.failure(error))
        }
    }

    /// Carries out the request's fault (`serve --faults`): its latency, its status in Lambda's error shape
    /// (returned, to answer instead), and the shaping of its body.
    private func injectFault(_ faults: FaultInjector, _ request: Request, context: RuntimeAPIContext) async -> FunctionURLResponse? {
        let asked = FaultRequest(
            server: "function-url", method: request.method.rawValue, path: request.uri.path,
            header: request.headers[HTTPField.Name(FaultInjector.headerName)!])
        let fault: Fault?
        do {
            fault = try await faults.fault(for: asked) { FaultRequest.Facts(function: function.name, delivery: "direct") }
        } catch {
            return FunctionURLResponse.lambdaError(.badRequest, type: "InvalidFaultException", message: "\(FaultInjector.headerName): \(error.message)")
        }
        guard let fault, let refusal = await faults.prepare(fault, on: context.channel) else { return nil }
        let status = HTTPResponse.Status(code: refusal.status)
        var answer = refusal.status == 429
            ? FunctionURLResponse.lambdaError(status, type: "TooManyRequestsException", message: "Rate Exceeded.")
            : FunctionURLResponse.lambdaError(status, type: "ServiceException", message: "injected fault (\(fault))")
        answer.headers[.retryAfter] = String(refusal.retryAfter)
        return answer
    }

    /// Lambda's answer when the runtime could not run the function for this request.
    static func failure(_ error: RuntimeError) -> FunctionURLResponse {
        switch error.code {
        case .tooManyRequests:
            return FunctionURLResponse.lambdaError(.tooManyRequests, type: "TooManyRequestsException", message: "Rate Exceeded.")
        case .requestTooLarge:
            return FunctionURLResponse.lambdaError(.contentTooLarge, type: "RequestEntityTooLargeException", message: error.message)
        default:
            return FunctionURLResponse.functionError
        }
    }

    /// A `BUFFERED` invocation's HTTP response: the function's answer, or Lambda's 502.
    static func buffered(_ result: InvocationResult) -> FunctionURLResponse {
        guard result.succeeded else {
            if result.errorType == "Function.ResponseSizeTooLarge" {
                return FunctionURLResponse.lambdaError(.badGateway, type: "Function.ResponseSizeTooLarge", message: result.errorMessage ?? "response too large")
            }
            return FunctionURLResponse.functionError
        }
        return FunctionURLResponse.buffered(result.payload)
    }

    /// A `RESPONSE_STREAM` invocation: the head as soon as the function has written its prelude (or its
    /// first bytes, without one), then the body as it writes. A failure before the head is Lambda's 502;
    /// after it, the body breaks off (the connection closes without the final chunk).
    private func streamed(_ event: ByteBuffer, trace: XRayTraceID) async throws -> Response {
        let reservation = try await runtime.reserve(function.name, payloadBytes: event.readableBytes)
        let stream = FunctionURLStream(runtime: runtime, reservation: reservation, payload: event, trace: trace)
        var contentType: String?
        var held = ByteBuffer()
        var head: FunctionURLResponse?
        var early: Result<InvocationResult, RuntimeError>?
        do {
            reading: for await piece in stream.pieces {
                switch piece {
                case .begin(let type):
                    contentType = type
                    if type?.lowercased() != FunctionURLResponse.preludeContentType {
                        head = FunctionURLResponse(status: .ok, headers: [.contentType: type ?? "application/octet-stream"], body: ByteBuffer())
                        break reading
                    }
                case .bytes(var bytes):
                    held.writeBuffer(&bytes)
                    if let split = Self.preludeEnd(in: held) {
                        guard let parsed = FunctionURLResponse.streamHead(prelude: held.getSlice(at: held.readerIndex, length: split) ?? ByteBuffer()) else {
                            stream.finish()
                            return Self.response(FunctionURLResponse.functionError)
                        }
                        held.moveReaderIndex(forwardBy: split + FunctionURLResponse.preludeDelimiter.count)
                        head = parsed
                        break reading
                    }
                    guard held.readableBytes <= 64 << 10 else {
                        // No delimiter in the first 64 KiB: not a prelude.
                        stream.finish()
                        return Self.response(FunctionURLResponse.functionError)
                    }
                case .end(let result):
                    early = result
                    break reading
                }
            }
        }
        if let early {
            stream.finish()
            switch early {
            case .success(let result) where result.succeeded:
                // The function wrote nothing (or only a prelude without its delimiter): an empty answer.
                let status = contentType?.lowercased() == FunctionURLResponse.preludeContentType && held.readableBytes > 0
                    ? FunctionURLResponse.streamHead(prelude: held) ?? FunctionURLResponse(status: .ok, headers: [:], body: ByteBuffer())
                    : FunctionURLResponse(status: .ok, headers: [.contentType: contentType ?? "application/json"], body: ByteBuffer())
                return Self.response(status)
            case .success(let result):
                return Self.response(Self.buffered(result))
            case .failure(let error):
                return Self.response(Self.failure(error))
            }
        }
        guard let head else {
            stream.finish()
            return Self.response(FunctionURLResponse.functionError)
        }
        let first = held
        return Response(status: head.status, headers: head.headers, body: ResponseBody { writer in
            defer { stream.finish() }
            if first.readableBytes > 0 { try await writer.write(first) }
            for await piece in stream.pieces {
                switch piece {
                case .begin:
                    continue
                case .bytes(let bytes):
                    try await writer.write(bytes)
                case .end(.success(let result)) where result.succeeded:
                    try await writer.finish(nil)
                    return
                case .end:
                    // The function failed mid-stream: the body ends without its last chunk, so the client
                    // can tell it is cut short.
                    throw StreamBrokenOff()
                }
            }
            throw StreamBrokenOff()
        })
    }

    private struct StreamBrokenOff: Error {}

    /// Where the eight NUL bytes after a prelude start, if they have arrived.
    static func preludeEnd(in buffer: ByteBuffer) -> Int? {
        let bytes = buffer.readableBytesView
        let delimiter = FunctionURLResponse.preludeDelimiter
        guard bytes.count >= delimiter.count else { return nil }
        var index = bytes.startIndex
        while index + delimiter.count <= bytes.endIndex {
            if bytes[index] == 0, bytes[index..<index + delimiter.count].allSatisfy({ $0 == 0 }) { return index - bytes.startIndex }
            index += 1
        }
        return nil
    }

    private static func response(_ answer: FunctionURLResponse) -> Response {
        Response(status: answer.status, headers: answer.headers, body: .init(byteBuffer: answer.body))
    }
}
