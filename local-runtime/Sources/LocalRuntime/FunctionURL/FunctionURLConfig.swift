import Crypto
import Foundation

/// A function's `url` in `function.json`: it gets a Function URL, an HTTP endpoint of its own that turns
/// each request into a payload format 2.0 event, as Lambda's Function URLs do.
///
/// ```json
/// "url": {"invokeMode": "RESPONSE_STREAM", "cors": {"allowOrigins": ["*"]}, "port": 9101}
/// ```
public struct FunctionURLConfig: Codable, Sendable, Hashable {
    /// How the function's answer reaches the client.
    public enum InvokeMode: String, Codable, Sendable {
        /// The whole response at once, within the 6 MB buffered limit.
        case buffered = "BUFFERED"
        /// Status and headers at once, then the body as the function writes it (up to 200 MB).
        case responseStream = "RESPONSE_STREAM"
    }

    /// Lambda's `Cors` for a Function URL: Lambda answers preflight requests itself and adds these
    /// headers to every response, over any the function sets.
    public struct Cors: Codable, Sendable, Hashable {
        /// `AllowOrigins` (`*` for any).
        public var allowOrigins: [String]?
        /// `AllowMethods` (`*` for any).
        public var allowMethods: [String]?
        /// `AllowHeaders`.
        public var allowHeaders: [String]?
        /// `ExposeHeaders`.
        public var exposeHeaders: [String]?
        /// `MaxAge` in seconds.
        public var maxAge: Int?
        /// `AllowCredentials`.
        public var allowCredentials: Bool?

        /// Makes a CORS configuration.
        public init(
            allowOrigins: [String]? = nil, allowMethods: [String]? = nil, allowHeaders: [String]? = nil,
            exposeHeaders: [String]? = nil, maxAge: Int? = nil, allowCredentials: Bool? = nil
        ) {
            self.allowOrigins = allowOrigins
            self.allowMethods = allowMethods
            self.allowHeaders = allowHeaders
            self.exposeHeaders = exposeHeaders
            self.maxAge = maxAge
            self.allowCredentials = allowCredentials
        }

        /// What the Lambda API's `Cors` shape calls these fields.
        var awsShape: [String: Any] {
            var shape: [String: Any] = [:]
            if let allowOrigins { shape["AllowOrigins"] = allowOrigins }
            if let allowMethods { shape["AllowMethods"] = allowMethods }
            if let allowHeaders { shape["AllowHeaders"] = allowHeaders }
            if let exposeHeaders { shape["ExposeHeaders"] = exposeHeaders }
            if let maxAge { shape["MaxAge"] = maxAge }
            if let allowCredentials { shape["AllowCredentials"] = allowCredentials }
            return shape
        }
    }

    /// `BUFFERED` (Lambda's default) or `RESPONSE_STREAM`.
    public var invokeMode: InvokeMode
    /// CORS, if the URL is called from pages of other origins.
    public var cors: Cors?
    /// `NONE`; `AWS_IAM` is accepted but not enforced here (no request is signed locally), and logged.
    public var authType: String
    /// The local port of the URL; 0 (the default) picks a free one, printed in the serve log.
    public var port: Int

    /// Makes a URL configuration.
    public init(invokeMode: InvokeMode = .buffered, cors: Cors? = nil, authType: String = "NONE", port: Int = 0) {
        self.invokeMode = invokeMode
        self.cors = cors
        self.authType = authType
        self.port = port
    }

    private enum CodingKeys: String, CodingKey { case invokeMode, cors, authType, port }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            invokeMode: try c.decodeIfPresent(InvokeMode.self, forKey: .invokeMode) ?? .buffered,
            cors: try c.decodeIfPresent(Cors.self, forKey: .cors),
            authType: try c.decodeIfPresent(String.self, forKey: .authType) ?? "NONE",
            port: try c.decodeIfPresent(Int.self, forKey: .port) ?? 0
        )
    }

    /// Problems Lambda would refuse, or this emulator cannot honour.
    func validate() -> String? {
        guard ["NONE", "AWS_IAM"].contains(authType) else { return "url.authType must be NONE or AWS_IAM" }
        guard (0...65535).contains(port) else { return "url.port must be 0...65535" }
        if let maxAge = cors?.maxAge, !(0...86400).contains(maxAge) { return "url.cors.maxAge must be 0...86400" }
        return nil
    }

    /// The URL's id as AWS shapes it (32 lowercase letters and digits), stable for a function name, so
    /// `domainName` and `apiId` in events stay the same across restarts.
    public static func urlID(for function: String) -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz234567")
        return String(SHA256.hash(data: Data("function-url:\(function)".utf8)).map { alphabet[Int($0) % 32] })
    }
}
