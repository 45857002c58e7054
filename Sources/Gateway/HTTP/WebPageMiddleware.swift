import Hummingbird

/// Serves the page at `/` (samples/browser) from its folder, for every path but the API's.
///
/// Hummingbird's `FileMiddleware` answers any path containing `..` with 400 before the router sees
/// it, so without this `/v1/images/0..0` was a 400 the API does not document instead of the
/// operation's own 404 (schemathesis found it). API paths go straight to their routes.
struct WebPageMiddleware: RouterMiddleware {
    typealias Context = GatewayRequestContext
    let files: FileMiddleware<GatewayRequestContext, LocalFileSystem>
    /// Path prefixes that belong to the API, never to the page.
    static let apiPrefixes = ["/v1/", "/healthz", "/metrics"]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        if Self.apiPrefixes.contains(where: { path.hasPrefix($0) }) {
            return try await next(request, context)
        }
        return try await files.handle(request, context: context, next: next)
    }
}
