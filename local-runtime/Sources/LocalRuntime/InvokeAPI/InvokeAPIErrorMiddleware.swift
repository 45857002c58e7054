import Hummingbird
import Logging

/// The one place the Invoke API's errors become responses, all in AWS's error shape: `RuntimeError`s
/// as they are, Hummingbird's own (unknown route, wrong method) as AWS names them, anything else a
/// `ServiceException` that hides its details and logs them.
struct InvokeAPIErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as RuntimeError {
            return try error.response(from: request, context: context)
        } catch let error as HTTPError {
            let code: RuntimeError.Code = error.status == .notFound ? .unknownOperation : .invalidParameter
            return try RuntimeError(code, error.body ?? error.status.reasonPhrase).response(from: request, context: context)
        } catch {
            context.logger.error("unhandled error: \(String(reflecting: error))")
            return try RuntimeError(.shuttingDown, "the local runtime failed; see its log").response(from: request, context: context)
        }
    }
}
