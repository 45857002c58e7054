import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import RelayProtocol

/// The API port (`serve --api-port`, as `sam local start-api`): a template's `Api` and `HttpApi` events
/// routed to their functions with API Gateway's proxy events, and the functions' answers mapped back as
/// API Gateway maps them.
struct APIGatewayResponder: HTTPResponder {
    typealias Context = RuntimeAPIContext

    let runtime: LocalRuntime
    let table: APIRouteTable
    let logger: Logger
    /// Each kind of API's id (`requestContext.apiId`), stable across runs, worked out once.
    private static let apiIDs = Dictionary(uniqueKeysWithValues: [APIRoute.Kind.rest, .http].map { kind in
        (kind, String(FunctionURLConfig.urlID(for: "\(kind.rawValue)-api").prefix(10)))
    })
    /// API Gateway's limit on a request's payload.
    static let maximumRequestBytes = 10 << 20

    /// Answers one request.
    func respond(to request: Request, context: RuntimeAPIContext) async throws -> Response {
        let (rawPath, _) = FunctionURLEvent.split(request.uri.description)
        guard let match = table.match(method: request.method.rawValue, path: rawPath) else {
            // What each kind of API answers for a path it has no route for.
            let rest = !table.routes.contains { $0.kind == .http }
            return Self.response(rest ? .apiGatewayError(.forbidden, "Missing Authentication Token") : .apiGatewayError(.notFound, "Not Found"))
        }
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: Self.maximumRequestBytes)
        } catch {
            return Self.response(.apiGatewayError(.contentTooLarge, "Request Too Long"))
        }
        let route = match.route
        let apiID = Self.apiIDs[route.kind] ?? ""
        var incoming = FunctionURLEvent.Request(
            method: request.method.rawValue, target: request.uri.description, headers: request.headers, body: body,
            sourceIP: context.channel.remoteAddress?.ipAddress ?? "127.0.0.1", urlID: apiID, requestID: UUID().uuidString.lowercased(),
            now: Date(), trace: .continuing(from: request.headers)
        )
        incoming.pathParameters = match.parameters
        incoming.routeKey = "\(route.method == "ANY" ? "ANY" : route.method) \(route.path)"
        let event = route.payloadFormat == "1.0"
            ? APIGatewayEvent.make(APIGatewayEvent.Request(request: incoming, resource: route.path, apiID: apiID))
            : FunctionURLEvent.make(incoming)
        let result: InvocationResult
        do {
            result = try await runtime.invokeOrThrottle(route.function, payload: event, trace: incoming.trace)
        } catch {
            if error.code == .tooManyRequests { return Self.response(.apiGatewayError(.tooManyRequests, "Too Many Requests")) }
            logger.error("\(route.kind.rawValue) \(incoming.routeKey) -> \(route.function): \(error.message)")
            return Self.response(.apiGatewayError(.internalServerError, "Internal server error"))
        }
        guard result.succeeded else {
            logger.warning("\(route.kind.rawValue) \(incoming.routeKey) -> \(route.function): function error \(result.errorType ?? "")")
            return Self.response(.apiGatewayError(.badGateway, "Internal server error"))
        }
        if route.payloadFormat == "2.0" { return Self.response(.buffered(result.payload)) }
        guard let answer = FunctionURLResponse.restProxy(result.payload) else {
            logger.warning("\(route.kind.rawValue) \(incoming.routeKey) -> \(route.function): malformed Lambda proxy response (it needs statusCode, and a string body)")
            return Self.response(.apiGatewayError(.badGateway, "Internal server error"))
        }
        return Self.response(answer)
    }

    private static func response(_ answer: FunctionURLResponse) -> Response {
        Response(status: answer.status, headers: answer.headers, body: .init(byteBuffer: answer.body))
    }
}
