/// Sizes as people write them in flags, headers and files.
public enum ByteSize {
    /// Bytes, or a whole number with `K`/`KiB`/`KB`, `M`/`MiB`/`MB` or `G`/`GiB`/`GB` (all powers of two); nil otherwise.
    public static func parse(_ text: String) -> Int64? {
        let text = text.filter { $0 != " " }
        let digits = text.prefix { $0.isNumber }
        guard let number = Int64(digits), number >= 0 else { return nil }
        let shifts: [String: Int64] = ["": 0, "b": 0, "k": 10, "kib": 10, "kb": 10, "m": 20, "mib": 20, "mb": 20, "g": 30, "gib": 30, "gb": 30]
        guard let shift = shifts[text.dropFirst(digits.count).lowercased()], number <= Int64.max >> shift else { return nil }
        return number << shift
    }
}
