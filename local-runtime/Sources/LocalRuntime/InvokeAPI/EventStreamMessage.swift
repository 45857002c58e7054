import Foundation
import NIOCore
import RelayProtocol

/// AWS's binary event-stream framing (`application/vnd.amazon.eventstream`), as Lambda's
/// `InvokeWithResponseStream` sends it and the AWS SDKs decode it.
///
/// A message is: total length (4 bytes), headers length (4), CRC-32 of those 8 bytes, headers,
/// payload, CRC-32 of everything before it; all integers big-endian. Headers here are all strings
/// (type 7: name length byte, name, type byte, value length as 2 bytes, value).
enum EventStreamMessage {
    static let contentType = "application/vnd.amazon.eventstream"

    /// One `PayloadChunk` event: bytes of the function's response as it wrote them.
    static func payloadChunk(_ bytes: ByteBuffer) -> ByteBuffer {
        event("PayloadChunk", contentType: "application/octet-stream", payload: bytes)
    }

    /// The closing `InvokeComplete` event: `ErrorCode` and `ErrorDetails` when the function failed,
    /// `LogResult` (base64 log tail) when asked for.
    static func invokeComplete(errorCode: String?, errorDetails: String?, logResult: String?) -> ByteBuffer {
        var fields: [String: String] = [:]
        if let errorCode { fields["ErrorCode"] = errorCode }
        if let errorDetails { fields["ErrorDetails"] = errorDetails }
        if let logResult { fields["LogResult"] = logResult }
        let json = (try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return event("InvokeComplete", contentType: "application/json", payload: ByteBuffer(bytes: json))
    }

    static func event(_ type: String, contentType: String, payload: ByteBuffer) -> ByteBuffer {
        var headers = ByteBuffer()
        for (name, value) in [(":event-type", type), (":content-type", contentType), (":message-type", "event")] {
            headers.writeInteger(UInt8(name.utf8.count))
            headers.writeString(name)
            headers.writeInteger(UInt8(7))
            headers.writeInteger(UInt16(value.utf8.count))
            headers.writeString(value)
        }
        let total = 12 + headers.readableBytes + payload.readableBytes + 4
        var message = ByteBuffer()
        message.reserveCapacity(total)
        message.writeInteger(UInt32(total))
        message.writeInteger(UInt32(headers.readableBytes))
        var crc = CRC32()
        crc.update(message.readableBytesView)
        message.writeInteger(crc.value)
        message.writeImmutableBuffer(headers)
        message.writeImmutableBuffer(payload)
        crc = CRC32()
        crc.update(message.readableBytesView)
        message.writeInteger(crc.value)
        return message
    }
}
