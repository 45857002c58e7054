import Foundation
import NIOCore

/// Lambda's error payload `{"errorMessage", "errorType"}`.
enum LambdaErrorPayload {
    static func make(type: String?, message: String) -> ByteBuffer {
        var object: [String: String] = ["errorMessage": message]
        if let type { object["errorType"] = type }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return ByteBuffer(bytes: data)
    }

    /// The `errorType` a runtime client put in the body (awslambdaric: the exception's class), if any.
    static func type(in payload: ByteBuffer) -> String? {
        struct Body: Decodable { var errorType: String? }
        return (try? JSONDecoder().decode(Body.self, from: Data(payload.readableBytesView)))?.errorType
    }

    static func message(in payload: ByteBuffer) -> String? {
        struct Body: Decodable { var errorMessage: String? }
        let data = Data(payload.readableBytesView)
        guard let decoded = try? JSONDecoder().decode(Body.self, from: data), let message = decoded.errorMessage else {
            return String(decoding: data.prefix(1024), as: UTF8.self)
        }
        return message
    }
}
