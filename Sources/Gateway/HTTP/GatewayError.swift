import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import RelayProtocol

/// An error a client sees: a status and `{"error": {"code", "message"}}`.
public struct GatewayError: HTTPResponseError, CustomStringConvertible, Sendable {
    /// HTTP status.
    public var status: HTTPResponse.Status
    /// Stable machine-readable code.
    public var code: GatewayErrorCode
    /// Human-readable explanation.
    public var message: String
    /// Extra response headers (`Retry-After`, `Content-Range`).
    public var headers: HTTPFields

    /// Makes an error.
    public init(_ status: HTTPResponse.Status, _ code: GatewayErrorCode, _ message: String, headers: HTTPFields = [:]) {
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
    }

    /// The response to an upload request refused before its body was read.
    init(_ error: IngestRequestError) {
        switch error {
        case .invalidIndex(let limit):
            self.init(.badRequest, .invalidIndex, "chunk index must be an integer 0...\(limit - 1)")
        case .missingDigest:
            self.init(.badRequest, .missingDigest, "Content-Digest: sha-256=:<base64>: is required")
        case .invalidDigest:
            self.init(.badRequest, .invalidDigest, "Content-Digest must carry a sha-256 byte sequence (RFC 9530)")
        case .chunkTooLarge(let cap, let length):
            self.init(.contentTooLarge, .chunkTooLarge, "a chunk may be at most \(cap) bytes; this one is \(length)")
        case .invalidManifest(let message):
            self.init(.badRequest, .invalidManifest, message)
        }
    }

    /// The answer to a request that failed on storage: `507` while the disk is full, `503` while the
    /// store refuses writes; both say when to try again.
    init(_ failure: StorageFailure) {
        switch failure {
        case .full:
            self.init(.insufficientStorage, .insufficientStorage, "out of storage space; nothing was changed", headers: [.retryAfter: "2"])
        case .unavailable:
            self.init(.serviceUnavailable, .storeUnavailable, "the store refuses writes or cannot be reached now; nothing was changed", headers: [.retryAfter: "2"])
        }
    }

    /// The same error as `503 Service Unavailable` (a health check answers 503 whatever the reason).
    var unavailable: GatewayError {
        GatewayError(.serviceUnavailable, code, message, headers: headers)
    }

    /// A readable summary.
    public var description: String { "\(status.code) \(code): \(message)" }

    /// The JSON response.
    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = self.headers
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: jsonBody))
    }

    /// `{"error": {"code", "message"}}`.
    var jsonBody: ByteBuffer {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return ByteBuffer(bytes: (try? encoder.encode(ErrorBody(code: code.rawValue, message: message))) ?? Data())
    }
}

/// The one place errors become responses: `GatewayError`s as they are, the state machine's refusals
/// as `GatewayError(_: Refusal)` says, Hummingbird's own
/// `HTTPError`s (unknown route, bad method) in the same JSON shape, anything else a 500 that
/// hides its details from the client and logs them.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as GatewayError {
            return try error.response(from: request, context: context)
        } catch let refused as JobLifecycle.Refused {
            return try GatewayError(refused.refusal).response(from: request, context: context)
        } catch let error as HTTPError {
            let code: GatewayErrorCode = error.status == .notFound ? .notFound : error.status == .methodNotAllowed ? .methodNotAllowed : .http(error.status.code)
            return try GatewayError(error.status, code, error.body ?? error.status.reasonPhrase, headers: error.headers)
                .response(from: request, context: context)
        } catch {
            // The machine's condition, not a bug: the disk is full, or the store refuses writes.
            if let failure = StorageFailure(error) {
                // The storage guard says once that storage is short; each request's refusal is detail.
                context.logger.debug("refused for storage: \(String(reflecting: error))")
                return try GatewayError(failure).response(from: request, context: context)
            }
            context.logger.error("unhandled error: \(String(reflecting: error))")
            return try GatewayError(.internalServerError, .internalError, "the gateway failed; see its log")
                .response(from: request, context: context)
        }
    }
}

extension HTTPResponse.Status {
    /// `507 Insufficient Storage` (RFC 4918), which HTTPTypes does not name.
    static let insufficientStorage = HTTPResponse.Status(code: 507, reasonPhrase: "Insufficient Storage")
}
