import Foundation
import HTTPTypes
import NIOCore

extension FunctionURLResponse {
    /// A REST API's (payload 1.0) reading of the function's answer: a JSON object with `statusCode`, and
    /// `headers`, `multiValueHeaders`, a string `body` and `isBase64Encoded` if any; nil for anything else
    /// (API Gateway's "Malformed Lambda proxy response").
    static func restProxy(_ payload: ByteBuffer) -> FunctionURLResponse? {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(payload.readableBytesView))) as? [String: Any],
            let code = statusCode(object["statusCode"])
        else { return nil }
        let allowed: Set<String> = ["statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded", "cookies"]
        guard object.keys.allSatisfy(allowed.contains) else { return nil }
        var response = FunctionURLResponse(status: HTTPResponse.Status(code: code), headers: [:], body: ByteBuffer())
        response.apply(headers: object["headers"], cookies: nil)
        for (name, values) in (object["multiValueHeaders"] as? [String: [Any]]) ?? [:] {
            guard let field = HTTPField.Name(name) else { continue }
            response.headers[fields: field] = values.map { HTTPField(name: field, value: $0 as? String ?? "\($0)") }
        }
        if response.headers[.contentType] == nil { response.headers[.contentType] = "application/json" }
        switch object["body"] {
        case let text as String:
            if object["isBase64Encoded"] as? Bool == true {
                guard let decoded = Data(base64Encoded: text) else { return nil }
                response.body = ByteBuffer(bytes: decoded)
            } else {
                response.body = ByteBuffer(string: text)
            }
        case nil, is NSNull:
            break
        default:
            return nil
        }
        return response
    }

    /// API Gateway's own error answer: `{"message": …}`.
    static func apiGatewayError(_ status: HTTPResponse.Status, _ message: String) -> FunctionURLResponse {
        let body = (try? JSONSerialization.data(withJSONObject: ["message": message])) ?? Data()
        return FunctionURLResponse(status: status, headers: [.contentType: "application/json"], body: ByteBuffer(bytes: body))
    }
}
