import Foundation

/// The event a Function URL sends (API Gateway's payload format 2.0), typed.
public struct FunctionURLRequest: Decodable, Sendable {
    /// What `requestContext.http` says of the request.
    public struct HTTP: Decodable, Sendable {
        /// `GET`, `POST`, …
        public var method: String
        /// The path.
        public var path: String
        /// `HTTP/1.1`.
        public var `protocol`: String
        /// The client's address.
        public var sourceIp: String
        /// The client's `User-Agent`.
        public var userAgent: String
    }

    /// `requestContext`.
    public struct Context: Decodable, Sendable {
        /// `anonymous` for a URL without IAM auth.
        public var accountId: String
        /// The URL's id.
        public var apiId: String
        /// The host the client used.
        public var domainName: String
        /// The URL's id again, as the host's first label.
        public var domainPrefix: String
        /// The request.
        public var http: HTTP
        /// This request's id.
        public var requestId: String
        /// `$default`.
        public var routeKey: String
        /// `$default`.
        public var stage: String
        /// `12/Mar/2020:19:03:58 +0000`.
        public var time: String
        /// Milliseconds since 1970.
        public var timeEpoch: Int64
    }

    /// `2.0`.
    public var version: String
    /// `$default`.
    public var routeKey: String
    /// The path as sent.
    public var rawPath: String
    /// The query as sent, without `?`.
    public var rawQueryString: String
    /// Cookies from the `Cookie` header.
    public var cookies: [String]?
    /// Headers, lowercased; repeated ones joined with commas.
    public var headers: [String: String]
    /// The decoded query; repeated keys joined with commas.
    public var queryStringParameters: [String: String]?
    /// The request's context.
    public var requestContext: Context
    /// The body, as text or base64 (`isBase64Encoded`).
    public var body: String?
    /// Whether `body` is base64.
    public var isBase64Encoded: Bool

    /// The body's bytes, decoded from base64 when it is.
    public var bodyBytes: [UInt8] {
        guard let body else { return [] }
        return isBase64Encoded ? Data(base64Encoded: body).map { Array($0) } ?? [] : Array(body.utf8)
    }
}
