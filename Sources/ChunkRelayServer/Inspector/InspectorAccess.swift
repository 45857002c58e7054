import Gateway
import HTTPTypes
import Hummingbird
import NIOCore

/// Who may use the inspector and replay: clients on this machine (loopback), and others only with
/// `serve --inspector-token`'s token (`Authorization: Bearer …`, or `?token=…` for the page and its
/// event stream, which a browser's `EventSource` cannot give a header).
struct InspectorAccess: RouterMiddleware {
    typealias Context = GatewayRequestContext
    let token: String?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard Self.isLoopback(context.channel.remoteAddress) || presentsToken(request) else {
            throw GatewayError(
                .forbidden, .inspectorForbidden,
                token == nil
                    ? "the inspector answers clients on this machine only; start serve with --inspector-token to let others in with it"
                    : "the inspector needs its token (Authorization: Bearer …) from clients off this machine")
        }
        return try await next(request, context)
    }

    private func presentsToken(_ request: Request) -> Bool {
        guard let token else { return false }
        let bearer = request.headers[.authorization].flatMap { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : nil }
        let offered = bearer ?? request.uri.queryParameters.get("token")
        guard let offered else { return false }
        // Compared in full whatever the first difference, so the time taken says nothing of the token.
        let a = Array(offered.utf8), b = Array(token.utf8)
        return a.count == b.count && zip(a, b).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }

    static func isLoopback(_ address: SocketAddress?) -> Bool {
        switch address {
        case .v4(let v4): return v4.address.sin_addr.s_addr.bigEndian >> 24 == 127
        case .v6:
            guard let ip = address?.ipAddress else { return false }
            return ip == "::1" || ip.hasPrefix("::ffff:127.")
        default: return false
        }
    }
}
