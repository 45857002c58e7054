import Foundation

extension JobEventContract {
    /// One event of the contract as it goes on the wire: its payload as JSON (sorted keys, slashes
    /// unescaped) in an SSE event. The gateway's streams and a generator's direct delivery both send
    /// their events through here, so the two speak the same bytes.
    public static func encode(_ name: Name, _ payload: some Encodable) -> [UInt8] {
        ServerSentEvent(event: name.rawValue, data: json(payload)).encodedBytes()
    }

    /// A payload as the contract writes it in an event's `data:`.
    public static func json(_ payload: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? String(decoding: encoder.encode(payload), as: UTF8.self)) ?? "{}"
    }
}
