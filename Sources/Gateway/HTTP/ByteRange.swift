import Foundation

/// A single `Range: bytes=...` request (RFC 9110 §14.1.2); multiple ranges are not served.
struct ByteRange: Equatable {
    var first: Int64?
    var last: Int64?

    init?(header: String) {
        guard header.hasPrefix("bytes=") else { return nil }
        let spec = header.dropFirst(6).trimmingCharacters(in: .whitespaces)
        guard !spec.contains(","), let dash = spec.firstIndex(of: "-") else { return nil }
        let start = spec[..<dash]
        let end = spec[spec.index(after: dash)...]
        first = start.isEmpty ? nil : Int64(start)
        last = end.isEmpty ? nil : Int64(end)
        if !start.isEmpty && first == nil { return nil }
        if !end.isEmpty && last == nil { return nil }
        if first == nil && last == nil { return nil }
    }

    /// The byte range within a file of `size` bytes, or nil when unsatisfiable.
    func resolve(size: Int64) -> Range<Int64>? {
        switch (first, last) {
        case (let first?, let last?):
            guard first <= last, first < size else { return nil }
            return first..<min(last + 1, size)
        case (let first?, nil):
            guard first < size else { return nil }
            return first..<size
        case (nil, let suffix?):
            guard suffix > 0, size > 0 else { return nil }
            return max(0, size - suffix)..<size
        default:
            return nil
        }
    }
}
