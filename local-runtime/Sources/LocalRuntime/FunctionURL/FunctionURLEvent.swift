import Foundation
import HTTPTypes
import NIOCore

/// The event a Function URL hands its function for one HTTP request: API Gateway's payload format 2.0,
/// with the sentinel values Function URLs use (`routeKey` and `stage` are `$default`).
enum FunctionURLEvent {
    /// What the event is built from.
    struct Request {
        var method: String
        /// Path and query as the client sent them (`/a%20b?x=1`).
        var target: String
        var headers: HTTPFields
        var body: ByteBuffer
        var sourceIP: String
        var urlID: String
        var requestID: String
        var now: Date
        /// The invocation's trace: the caller's continued, or one begun here.
        var trace: XRayTraceID
        /// An HTTP API's route (`GET /tiles/{proxy+}`); a Function URL's is `$default`.
        var routeKey = "$default"
        /// The route's `{name}` values.
        var pathParameters: [String: String]?
    }

    /// The event as JSON.
    static func make(_ request: Request) -> ByteBuffer {
        let (rawPath, rawQuery) = split(request.target)
        var headers: [String: String] = [:]
        var cookies: [String] = []
        for field in request.headers {
            let name = field.name.canonicalName
            if name == "cookie" {
                cookies += field.value.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                continue
            }
            // Repeated fields are joined with commas, as Lambda does.
            headers[name] = headers[name].map { "\($0),\(field.value)" } ?? field.value
        }
        headers["x-forwarded-for"] = headers["x-forwarded-for"].map { "\($0), \(request.sourceIP)" } ?? request.sourceIP
        headers["x-forwarded-proto"] = "http"
        if headers["x-amzn-trace-id"] == nil {
            headers["x-amzn-trace-id"] = "Root=\(request.trace.root)"
        }

        let time = DateFormatter()
        time.locale = Locale(identifier: "en_US_POSIX")
        time.timeZone = TimeZone(identifier: "UTC")
        time.dateFormat = "dd/MMM/yyyy:HH:mm:ss Z"
        let context: [String: Any] = [
            "accountId": "anonymous",
            "apiId": request.urlID,
            "domainName": headers["host"] ?? "\(request.urlID).lambda-url.\(RuntimeConfiguration.region).on.aws",
            "domainPrefix": request.urlID,
            "http": [
                "method": request.method, "path": rawPath, "protocol": "HTTP/1.1", "sourceIp": request.sourceIP,
                "userAgent": headers["user-agent"] ?? "",
            ],
            "requestId": request.requestID,
            "routeKey": request.routeKey,
            "stage": "$default",
            "time": time.string(from: request.now),
            "timeEpoch": Int64(request.now.timeIntervalSince1970 * 1000),
        ]

        var event: [String: Any] = [
            "version": "2.0",
            "routeKey": request.routeKey,
            "rawPath": rawPath,
            "rawQueryString": rawQuery,
            "headers": headers,
            "requestContext": context,
            "isBase64Encoded": false,
        ]
        if !cookies.isEmpty { event["cookies"] = cookies }
        if let parameters = request.pathParameters, !parameters.isEmpty { event["pathParameters"] = parameters }
        if let parameters = queryParameters(rawQuery) { event["queryStringParameters"] = parameters }
        setBody(request.body, contentType: headers["content-type"], in: &event)
        return encoded(event)
    }

    /// An event's `body` and `isBase64Encoded`: text for text types, base64 for anything else; absent
    /// for an empty body.
    static func setBody(_ body: ByteBuffer, contentType: String?, in event: inout [String: Any]) {
        guard body.readableBytes > 0 else { return }
        let bytes = Data(body.readableBytesView)
        if isText(contentType), let text = String(data: bytes, encoding: .utf8) {
            event["body"] = text
        } else {
            event["body"] = bytes.base64EncodedString()
            event["isBase64Encoded"] = true
        }
    }

    /// The event as the function reads it.
    static func encoded(_ event: [String: Any]) -> ByteBuffer {
        let data = (try? JSONSerialization.data(withJSONObject: event, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return ByteBuffer(bytes: data)
    }

    /// `rawPath` and `rawQueryString`, as sent (not decoded).
    static func split(_ target: String) -> (path: String, query: String) {
        guard let mark = target.firstIndex(of: "?") else { return (target.isEmpty ? "/" : target, "") }
        return (String(target[..<mark]), String(target[target.index(after: mark)...]))
    }

    /// `queryStringParameters`: decoded, repeated keys joined with commas; nil when there is no query.
    static func queryParameters(_ query: String) -> [String: String]? {
        guard !query.isEmpty else { return nil }
        var parameters: [String: String] = [:]
        for (key, value) in queryPairs(query) {
            parameters[key] = parameters[key].map { "\($0),\(value)" } ?? value
        }
        return parameters
    }

    /// The query's `key=value` pairs in order, decoded (`+` is a space); a key without `=` has "".
    static func queryPairs(_ query: String) -> [(key: String, value: String)] {
        func decode(_ text: Substring) -> String {
            String(text).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(text)
        }
        return query.split(separator: "&").filter { !$0.isEmpty }.map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (decode(parts[0]), parts.count > 1 ? decode(parts[1]) : "")
        }
    }

    /// Whether Lambda passes a body of this type as text rather than base64.
    static func isText(_ contentType: String?) -> Bool {
        guard let type = contentType?.lowercased() else { return false }
        return type.hasPrefix("text/") || ["json", "xml", "javascript", "x-www-form-urlencoded"].contains { type.contains($0) }
    }
}
