#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One Server-Sent Event (WHATWG HTML, "Server-sent events").
public struct ServerSentEvent: Sendable, Hashable {
    /// `event:`; `nil` means the default type `message`.
    public var event: String?
    /// `data:`; lines are joined with `\n`.
    public var data: String
    /// `id:`; the client's last event id after this event.
    public var id: String?
    /// `retry:` in milliseconds.
    public var retry: Int?

    /// Makes an event.
    public init(event: String? = nil, data: String = "", id: String? = nil, retry: Int? = nil) {
        self.event = event
        self.data = data
        self.id = id
        self.retry = retry
    }

    /// CRLF and lone CR become LF.
    static func normalizingLineEnds(_ bytes: [UInt8]) -> [UInt8] {
        guard bytes.contains(UInt8(ascii: "\r")) else { return bytes }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "\r") {
                out.append(UInt8(ascii: "\n"))
                if index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "\n") { index += 1 }
            } else {
                out.append(bytes[index])
            }
            index += 1
        }
        return out
    }

    /// `text` without CR and LF.
    static func singleLine(_ text: String) -> [UInt8] {
        text.utf8.filter { $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\n") }
    }

    /// The longest line the encoder writes, field name included: many SSE clients cap line length at 64 KiB.
    public static let maximumLineLength = 64 * 1024

    /// Encodes the event, ending with the blank line that dispatches it.
    ///
    /// `data` is split at its own newlines, and a line longer than `wrapAt` is split further, which is only
    /// lossless for data whose reader ignores line breaks (base64, which the WHATWG forgiving decoder
    /// and `atob` accept with whitespace).
    public func encoded(wrapAt: Int = maximumLineLength - 8) -> String {
        String(decoding: encodedBytes(wrapAt: wrapAt), as: UTF8.self)
    }

    /// The encoded event as UTF-8 bytes (what goes on the wire).
    public func encodedBytes(wrapAt: Int = maximumLineLength - 8) -> [UInt8] {
        // A reader ends a line at CR, LF or CRLF: data lines are split at all three (a CR written
        // as it is would cut the line short), and `event`/`id` cannot hold one at all.
        let payload = Self.normalizingLineEnds(Array(data.utf8))
        var out: [UInt8] = []
        out.reserveCapacity(payload.count + (payload.count / max(wrapAt, 1) + 1) * 7 + 64)
        if let retry { out += Array("retry: \(retry)\n".utf8) }
        if let event { out += Array("event: ".utf8) + Self.singleLine(event) + [UInt8(ascii: "\n")] }
        if let id { out += Array("id: ".utf8) + Self.singleLine(id) + [UInt8(ascii: "\n")] }
        let dataPrefix = Array("data: ".utf8)
        var lineStart = 0
        while true {
            let lineEnd = payload[lineStart...].firstIndex(of: UInt8(ascii: "\n")) ?? payload.endIndex
            var start = lineStart
            repeat {
                var cut = min(lineEnd, start + wrapAt)
                // Never split a UTF-8 sequence: back off over continuation bytes.
                while cut < lineEnd, cut > start, payload[cut] & 0xC0 == 0x80 { cut -= 1 }
                out += dataPrefix
                out += payload[start..<cut]
                out.append(UInt8(ascii: "\n"))
                start = cut
            } while start < lineEnd
            guard lineEnd < payload.endIndex else { break }
            lineStart = lineEnd + 1
        }
        out.append(UInt8(ascii: "\n"))
        return out
    }

    /// The size of `encodeBase64Event(...)`'s output for `count` payload bytes.
    public static func base64EventLength(event: String, id: String, payloadCount: Int, wrapAt: Int = maximumLineLength - 8) -> Int {
        let wrap = max(4, wrapAt / 4 * 4)
        let characters = (payloadCount + 2) / 3 * 4
        let lines = max(1, (characters + wrap - 1) / wrap)
        return "event: \(event)\nid: \(id)\n".utf8.count + characters + lines * 7 + 1
    }

    /// Writes an event whose data is `payload` in base64, wrapped below the line limit, straight into
    /// `output` (sized by `base64EventLength`): no intermediate string, so relaying a chunk costs the
    /// chunk plus its encoding and nothing more. Returns the bytes written.
    public static func encodeBase64Event(
        event: String, id: String, payload: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer,
        wrapAt: Int = maximumLineLength - 8
    ) -> Int {
        let wrap = max(4, wrapAt / 4 * 4)  // whole base64 quads per line
        let alphabet: StaticString = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        var position = 0
        func put(_ byte: UInt8) {
            output[position] = byte
            position += 1
        }
        func put(_ text: String) {
            for byte in text.utf8 { put(byte) }
        }
        put("event: \(event)\nid: \(id)\n")
        alphabet.withUTF8Buffer { table in
            var lineLength = 0
            func startLineIfNeeded() {
                if lineLength == 0 { put("data: ") }
            }
            func endLineIfFull() {
                if lineLength >= wrap {
                    put(UInt8(ascii: "\n"))
                    lineLength = 0
                }
            }
            var index = 0
            let count = payload.count
            while index < count {
                startLineIfNeeded()
                let b0 = UInt32(payload[index])
                let b1 = index + 1 < count ? UInt32(payload[index + 1]) : 0
                let b2 = index + 2 < count ? UInt32(payload[index + 2]) : 0
                let value = b0 << 16 | b1 << 8 | b2
                put(table[Int(value >> 18 & 63)])
                put(table[Int(value >> 12 & 63)])
                put(index + 1 < count ? table[Int(value >> 6 & 63)] : UInt8(ascii: "="))
                put(index + 2 < count ? table[Int(value & 63)] : UInt8(ascii: "="))
                lineLength += 4
                index += 3
                endLineIfFull()
            }
            if lineLength > 0 || count == 0 {
                startLineIfNeeded()
                put(UInt8(ascii: "\n"))
            }
        }
        put(UInt8(ascii: "\n"))
        return position
    }

    /// A comment line (`: text`), which clients ignore; used as a heartbeat so proxies keep the connection.
    public static func comment(_ text: String = "") -> String {
        ": \(text)\n\n"
    }
}

/// An incremental parser that follows the WHATWG event-stream interpretation rules: any of CRLF, LF
/// or CR ends a line; a leading BOM is skipped; `:` lines are comments; `data` lines accumulate;
/// an `id` containing NUL is ignored; `retry` takes only ASCII digits; a blank line dispatches.
public struct ServerSentEventParser: Sendable {
    // Fields stay bytes until an event is dispatched: a chunk event's data is over a megabyte of
    // base64, and building it up as Strings line by line copied it several times over.
    private var buffer: [UInt8] = []
    private var sawFirstBytes = false
    private var lastWasCR = false
    private var eventType = ""
    private var dataBuffer: [UInt8] = []
    private var hasData = false
    private var pendingRetry: Int?
    /// The last event id seen (it persists across events, as in the browser).
    public private(set) var lastEventID = ""
    /// The reconnection time the stream asked for.
    public private(set) var reconnectionTime: Int?

    /// A new parser.
    public init() {}

    /// Feeds bytes; returns the events completed by them.
    public mutating func push(_ bytes: some Sequence<UInt8>) -> [ServerSentEvent] {
        var events: [ServerSentEvent] = []
        let consumed: Void? = bytes.withContiguousStorageIfAvailable { consume($0, into: &events) }
        if consumed == nil {
            Array(bytes).withUnsafeBufferPointer { consume($0, into: &events) }
        }
        return events
    }

    private mutating func consume(_ input: UnsafeBufferPointer<UInt8>, into events: inout [ServerSentEvent]) {
        guard sawFirstBytes else {
            // A leading byte-order mark is skipped; hold back a partial one until it is complete.
            var held = buffer + Array(input)
            if held.count < 3 && [0xEF, 0xBB, 0xBF].starts(with: held) {
                buffer = held
                return
            }
            sawFirstBytes = true
            buffer = []
            if held.starts(with: [0xEF, 0xBB, 0xBF]) { held.removeFirst(3) }
            held.withUnsafeBufferPointer { consumeLines($0, into: &events) }
            return
        }
        consumeLines(input, into: &events)
    }

    private mutating func consumeLines(_ input: UnsafeBufferPointer<UInt8>, into events: inout [ServerSentEvent]) {
        var index = 0
        let count = input.count
        while index < count {
            if lastWasCR {
                lastWasCR = false
                if input[index] == UInt8(ascii: "\n") {
                    index += 1
                    continue
                }
            }
            // Copy everything up to the next line end in one go.
            let end = Self.lineEnd(in: input, from: index)
            buffer.append(contentsOf: UnsafeBufferPointer(rebasing: input[index..<end]))
            guard end < count else { break }
            lastWasCR = input[end] == UInt8(ascii: "\r")
            endLine(into: &events)
            index = end + 1
        }
    }

    /// The index of the first CR or LF at or after `start`, or the end: `memchr` scans a long base64 line
    /// many times faster than a byte loop.
    private static func lineEnd(in input: UnsafeBufferPointer<UInt8>, from start: Int) -> Int {
        guard let base = input.baseAddress, start < input.count else { return input.count }
        let length = input.count - start
        var end = input.count
        if let found = memchr(base + start, Int32(UInt8(ascii: "\n")), length) {
            end = start + (UnsafeRawPointer(found) - UnsafeRawPointer(base + start))
        }
        if end > start, let found = memchr(base + start, Int32(UInt8(ascii: "\r")), end - start) {
            end = start + (UnsafeRawPointer(found) - UnsafeRawPointer(base + start))
        }
        return end
    }

    private mutating func endLine(into events: inout [ServerSentEvent]) {
        defer { buffer.removeAll(keepingCapacity: true) }
        if buffer.isEmpty {
            dispatch(into: &events)
            return
        }
        if buffer.first == UInt8(ascii: ":") { return }
        let colon = buffer.firstIndex(of: UInt8(ascii: ":")) ?? buffer.endIndex
        var valueStart = min(colon + 1, buffer.endIndex)
        if valueStart < buffer.endIndex, buffer[valueStart] == UInt8(ascii: " ") { valueStart += 1 }
        let name = buffer[..<colon]
        let value = buffer[valueStart...]
        if name.elementsEqual("data".utf8) {
            dataBuffer.append(contentsOf: value)
            dataBuffer.append(UInt8(ascii: "\n"))
            hasData = true
        } else if name.elementsEqual("event".utf8) {
            eventType = String(decoding: value, as: UTF8.self)
        } else if name.elementsEqual("id".utf8) {
            if !value.contains(0) { lastEventID = String(decoding: value, as: UTF8.self) }
        } else if name.elementsEqual("retry".utf8) {
            if !value.isEmpty, value.allSatisfy({ (0x30...0x39).contains($0) }), let number = Int(String(decoding: value, as: UTF8.self)) {
                reconnectionTime = number
                pendingRetry = number
            }
        }
    }

    private mutating func dispatch(into events: inout [ServerSentEvent]) {
        defer {
            eventType = ""
            dataBuffer.removeAll(keepingCapacity: true)
            hasData = false
            pendingRetry = nil
        }
        // The spec dispatches nothing when the data buffer is empty; the event type is reset either way.
        guard hasData else { return }
        let data = String(decoding: dataBuffer.dropLast(dataBuffer.last == UInt8(ascii: "\n") ? 1 : 0), as: UTF8.self)
        events.append(
            ServerSentEvent(event: eventType.isEmpty ? nil : eventType, data: data, id: lastEventID.isEmpty ? nil : lastEventID, retry: pendingRetry)
        )
    }
}
