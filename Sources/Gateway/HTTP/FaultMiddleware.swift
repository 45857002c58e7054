import FaultInjection
import HTTPTypes
import Hummingbird
import RelayProtocol

/// Faults on demand on the gateway's API (`serve --faults`, `--fault-rules`): the injector decides, this
/// carries it out before the response (latency, a status instead) and arms the connection for the rest.
/// Added only when the gateway has an injector: otherwise the header means nothing.
struct FaultMiddleware: RouterMiddleware {
    typealias Context = GatewayRequestContext
    static let header = HTTPField.Name(FaultInjector.headerName)!

    let injector: FaultInjector
    let store: any JobLedger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let asked = FaultRequest(server: "gateway", method: request.method.rawValue, path: request.uri.path, header: request.headers[Self.header])
        let fault: Fault?
        do {
            fault = try await injector.fault(for: asked) { await facts(path: asked.path) }
        } catch {
            throw GatewayError(.badRequest, .invalidFault, "\(FaultInjector.headerName): \(error.message)")
        }
        if let fault, let refusal = await injector.prepare(fault, on: context.channel) {
            throw GatewayError(
                HTTPResponse.Status(code: refusal.status), .injectedFault, "injected fault (\(fault)); retry after \(refusal.retryAfter) s",
                headers: [.retryAfter: String(refusal.retryAfter)])
        }
        return try await next(request, context)
    }

    /// The function and delivery of the job a path names (its events, its image), for rules that ask.
    private func facts(path: String) async -> FaultRequest.Facts? {
        let segments = path.split(separator: "/").map(String.init)
        guard segments.count >= 3, segments[0] == "v1", RandomToken.isWellFormed(segments[2]) else { return nil }
        let job: JobRecord? = switch segments[1] {
        case "jobs": try? await store.job(id: segments[2])
        case "images": try? await store.job(imageKey: segments[2])
        default: nil
        }
        return job.map { FaultRequest.Facts(function: $0.function, delivery: $0.delivery.rawValue) }
    }
}
