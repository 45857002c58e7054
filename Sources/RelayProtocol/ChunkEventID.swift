/// A `chunk` event's id: the chunk index, prefixed with the attempt after a retry (`2:5`), so a client
/// resuming with an id of an abandoned attempt is told to start over rather than resumed into another
/// attempt's bytes. `Last-Event-ID` carries it back; index -1 means "before the first chunk".
public struct ChunkEventID: Hashable, Sendable, CustomStringConvertible {
    /// The attempt (1-based).
    public var attempt: Int
    /// The chunk index (0-based; -1 before the first chunk).
    public var index: Int

    /// Makes an id.
    public init(attempt: Int, index: Int) {
        self.attempt = attempt
        self.index = index
    }

    /// Parses `n` (attempt 1) or `attempt:n`; nil for anything else (`+5`, `1:`, `0:3`).
    public init?(_ text: String) {
        // Digits only (and `-1`): `Int` alone would also take `+5`.
        guard text.utf8.allSatisfy({ (0x30...0x39).contains($0) || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: "-") }) else { return nil }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        switch parts.count {
        case 1:
            guard let index = Int(parts[0]), index >= -1 else { return nil }
            self.init(attempt: 1, index: index)
        case 2:
            guard let attempt = Int(parts[0]), attempt >= 1, let index = Int(parts[1]), index >= -1 else { return nil }
            self.init(attempt: attempt, index: index)
        default:
            return nil
        }
    }

    /// `n` for attempt 1, `attempt:n` after a retry.
    public var description: String { attempt <= 1 ? String(index) : "\(attempt):\(index)" }
}
