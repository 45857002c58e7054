import Foundation
import HTTPTypes
import NIOCore

/// What a Function URL answers: the function's response as Lambda turns it into HTTP, or Lambda's own
/// error responses.
struct FunctionURLResponse {
    var status: HTTPResponse.Status
    var headers: HTTPFields
    var body: ByteBuffer

    /// The content type a `RESPONSE_STREAM` function uses to send a status and headers before its body.
    static let preludeContentType = "application/vnd.awslambda.http-integration-response"
    /// The eight NUL bytes between the prelude and the body.
    static let preludeDelimiter = [UInt8](repeating: 0, count: 8)

    /// A `BUFFERED` function's answer. A JSON object with `statusCode` is the HTTP response (`headers`,
    /// `cookies`, `body`, `isBase64Encoded`); anything else is a 200 `application/json` body as it is
    /// (a JSON string is sent without its quotes), as Lambda infers it.
    static func buffered(_ payload: ByteBuffer) -> FunctionURLResponse {
        let data = Data(payload.readableBytesView)
        let parsed = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        if let text = parsed as? String {
            return FunctionURLResponse(status: .ok, headers: [.contentType: "application/json"], body: ByteBuffer(string: text))
        }
        guard let object = parsed as? [String: Any], let code = statusCode(object["statusCode"]) else {
            return FunctionURLResponse(status: .ok, headers: [.contentType: "application/json"], body: payload)
        }
        var response = FunctionURLResponse(status: HTTPResponse.Status(code: code), headers: [:], body: ByteBuffer())
        response.apply(headers: object["headers"], cookies: object["cookies"])
        if response.headers[.contentType] == nil { response.headers[.contentType] = "application/json" }
        switch object["body"] {
        case let text as String:
            if object["isBase64Encoded"] as? Bool == true, let decoded = Data(base64Encoded: text) {
                response.body = ByteBuffer(bytes: decoded)
            } else {
                response.body = ByteBuffer(string: text)
            }
        case nil, is NSNull:
            break
        case let other?:
            let encoded = (try? JSONSerialization.data(withJSONObject: other, options: [.fragmentsAllowed])) ?? Data()
            response.body = ByteBuffer(bytes: encoded)
        }
        return response
    }

    /// A streamed response's head from its prelude (`{"statusCode", "headers", "cookies"}`); nil when the
    /// prelude is not a JSON object.
    static func streamHead(prelude: ByteBuffer) -> FunctionURLResponse? {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(prelude.readableBytesView))) as? [String: Any] else { return nil }
        var response = FunctionURLResponse(status: HTTPResponse.Status(code: statusCode(object["statusCode"]) ?? 200), headers: [:], body: ByteBuffer())
        response.apply(headers: object["headers"], cookies: object["cookies"])
        if response.headers[.contentType] == nil { response.headers[.contentType] = "application/octet-stream" }
        return response
    }

    /// Lambda's answer when the function failed, timed out or broke a limit.
    static let functionError = FunctionURLResponse(
        status: .badGateway, headers: [.contentType: "text/plain; charset=utf-8"], body: ByteBuffer(string: "Internal Server Error")
    )

    /// An error Lambda answers with itself, in its `{"Message": …}` shape and `x-amzn-ErrorType`.
    static func lambdaError(_ status: HTTPResponse.Status, type: String, message: String) -> FunctionURLResponse {
        let body = (try? JSONSerialization.data(withJSONObject: ["Message": message])) ?? Data()
        return FunctionURLResponse(
            status: status, headers: [.contentType: "application/json", HTTPField.Name("x-amzn-ErrorType")!: type], body: ByteBuffer(bytes: body)
        )
    }

    mutating func apply(headers fields: Any?, cookies: Any?) {
        for (name, value) in (fields as? [String: Any]) ?? [:] {
            guard let field = HTTPField.Name(name) else { continue }
            headers[field] = value as? String ?? "\(value)"
        }
        for cookie in (cookies as? [String]) ?? [] {
            headers.append(HTTPField(name: .setCookie, value: cookie))
        }
    }

    static func statusCode(_ value: Any?) -> Int? {
        switch value {
        case let number as Int: return (100...599).contains(number) ? number : nil
        case let text as String: return Int(text).flatMap { (100...599).contains($0) ? $0 : nil }
        default: return nil
        }
    }
}
