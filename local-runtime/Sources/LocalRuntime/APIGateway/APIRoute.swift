/// An `Api` or `HttpApi` event of a template's function: requests to its method and path on the API
/// port invoke the function with API Gateway's proxy event, as `sam local start-api` does.
public struct APIRoute: Sendable, Hashable {
    /// Which API Gateway the event belongs to, and so its event's shape.
    public enum Kind: String, Sendable, Hashable {
        /// A REST API (`Api`): payload format 1.0.
        case rest = "Api"
        /// An HTTP API (`HttpApi`): payload format 2.0 unless the event says 1.0.
        case http = "HttpApi"
    }

    /// `Api` or `HttpApi`.
    public var kind: Kind
    /// Upper case, or `ANY`.
    public var method: String
    /// As written: `/hello/{name}`, `/files/{proxy+}`.
    public var path: String
    /// The function's name (its logical id).
    public var function: String
    /// `1.0` or `2.0`.
    public var payloadFormat: String

    /// Makes a route.
    public init(kind: Kind, method: String, path: String, function: String, payloadFormat: String) {
        self.kind = kind
        self.method = method
        self.path = path
        self.function = function
        self.payloadFormat = payloadFormat
    }
}
