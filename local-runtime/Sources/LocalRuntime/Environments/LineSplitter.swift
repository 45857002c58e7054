/// Splits a process's output into lines of at most `limit` bytes, and takes out the runtime's own sync markers.
///
/// A longer line is cut: its first `limit` bytes are passed on with a note, the rest is dropped up to
/// the next newline, so a function that prints without newlines cannot grow the runtime's memory.
///
/// A marker (`Self.marker(_:)`) is what the runtime writes into the function's output pipe to learn when
/// everything the function wrote before it has been read; it is found wherever it lands, even inside a line
/// the function has not finished, and never shows in the output.
struct LineSplitter {
    let limit: Int
    private var partial: [UInt8] = []
    /// Bytes of the current over-long line dropped so far; nil while the line is within the limit.
    private var dropped: Int?
    /// Bytes that may be the start of a marker, held until it is clear whether they are.
    private var held: [UInt8] = []

    /// How every marker begins: a NUL, which text output does not contain, then a name.
    static let markerPrefix: [UInt8] = [0] + Array("chunkrelay-sync:".utf8)
    /// Digits of a marker's number, at most (any `UInt64` fits).
    static let markerDigits = 19

    init(limit: Int) {
        self.limit = limit
    }

    /// The bytes of marker `number`.
    static func marker(_ number: UInt64) -> [UInt8] {
        markerPrefix + Array(String(number % 10_000_000_000_000_000_000).utf8) + [0]
    }

    /// Takes the next bytes of output; complete lines go to `emit`, the number of each marker to `marker`.
    mutating func append(_ bytes: UnsafeRawBufferPointer, emit: (String) -> Void, marker: (UInt64) -> Void = { _ in }) {
        for byte in bytes {
            if held.isEmpty, byte != 0 {
                take(byte, emit: emit)
                continue
            }
            let prefix = Self.markerPrefix
            if held.count < prefix.count, byte == prefix[held.count] {
                held.append(byte)
                continue
            }
            if held.count >= prefix.count {
                let digits = held.count - prefix.count
                if byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9"), digits < Self.markerDigits {
                    held.append(byte)
                    continue
                }
                if byte == 0, digits > 0, let number = UInt64(String(decoding: held[prefix.count...], as: UTF8.self)) {
                    held.removeAll()
                    marker(number)
                    continue
                }
            }
            // Not a marker after all: what was held is the function's own output.
            let ordinary = held
            held.removeAll()
            for earlier in ordinary { take(earlier, emit: emit) }
            if byte == 0 { held.append(byte) } else { take(byte, emit: emit) }
        }
    }

    /// The output ended: a last line without a newline is passed on.
    mutating func finish(emit: (String) -> Void) {
        let ordinary = held
        held.removeAll()
        for byte in ordinary { take(byte, emit: emit) }
        if dropped == nil, !partial.isEmpty { emit(Self.text(partial)) }
        partial = []
        dropped = nil
    }

    private mutating func take(_ byte: UInt8, emit: (String) -> Void) {
        if byte == UInt8(ascii: "\n") {
            if dropped == nil { emit(Self.text(partial)) }
            partial.removeAll(keepingCapacity: partial.count <= 4096)
            dropped = nil
        } else if let count = dropped {
            dropped = count + 1
        } else if partial.count == limit {
            emit(Self.text(partial) + " [line cut: longer than \(limit) bytes]")
            partial.removeAll()
            dropped = 1
        } else {
            partial.append(byte)
        }
    }

    private static func text(_ bytes: [UInt8]) -> String {
        var line = String(decoding: bytes, as: UTF8.self)
        if line.hasSuffix("\r") { line.removeLast() }
        return line
    }
}
