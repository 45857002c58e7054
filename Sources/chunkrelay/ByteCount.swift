import ArgumentParser

/// A size on the command line: bytes, or a number with `KiB`, `MiB` or `GiB` (`K`, `M`, `G` alike).
struct ByteCount: ExpressibleByArgument, Sendable {
    /// The size in bytes.
    let bytes: Int64

    init(bytes: Int64) { self.bytes = bytes }

    init?(argument: String) {
        let text = argument.trimmingCharacters(in: .whitespaces)
        let digits = text.prefix { $0.isNumber }
        guard let number = Int64(digits), number >= 0 else { return nil }
        let shifts: [String: Int64] = ["": 0, "b": 0, "k": 10, "kib": 10, "kb": 10, "m": 20, "mib": 20, "mb": 20, "g": 30, "gib": 30, "gb": 30]
        guard let shift = shifts[text.dropFirst(digits.count).lowercased()], number <= Int64.max >> shift else { return nil }
        bytes = number << shift
    }

    var defaultValueDescription: String { "\(bytes >> 20)MiB" }
}
