/// Splits a process's output into lines of at most `limit` bytes.
///
/// A longer line is cut: its first `limit` bytes are passed on with a note, the rest is dropped up to
/// the next newline, so a function that prints without newlines cannot grow the runtime's memory.
struct LineSplitter {
    let limit: Int
    private var partial: [UInt8] = []
    /// Bytes of the current over-long line dropped so far; nil while the line is within the limit.
    private var dropped: Int?

    init(limit: Int) {
        self.limit = limit
    }

    /// Takes the next bytes of output; complete lines go to `emit`.
    mutating func append(_ bytes: UnsafeRawBufferPointer, emit: (String) -> Void) {
        for byte in bytes {
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
    }

    /// The output ended: a last line without a newline is passed on.
    mutating func finish(emit: (String) -> Void) {
        if dropped == nil, !partial.isEmpty { emit(Self.text(partial)) }
        partial = []
        dropped = nil
    }

    private static func text(_ bytes: [UInt8]) -> String {
        var line = String(decoding: bytes, as: UTF8.self)
        if line.hasSuffix("\r") { line.removeLast() }
        return line
    }
}
