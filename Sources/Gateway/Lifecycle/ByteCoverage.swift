/// Which bytes of an image its clients have acknowledged so far, over all of its transfers (whole,
/// ranged, broken and resumed): sorted, disjoint, non-adjacent ranges. The key is consumed when they
/// cover the image, and not before: a range fetched alone never counts as the whole.
struct ByteCoverage: Sendable, Equatable {
    private(set) var ranges: [Range<Int64>]

    /// Nothing acknowledged yet.
    init() { ranges = [] }

    /// The union of `ranges`.
    init(_ ranges: [Range<Int64>]) {
        self.ranges = []
        for range in ranges { add(range) }
    }

    /// Adds acknowledged bytes, merging what overlaps or touches.
    mutating func add(_ range: Range<Int64>) {
        guard !range.isEmpty else { return }
        var merged = range
        var kept: [Range<Int64>] = []
        kept.reserveCapacity(ranges.count + 1)
        for existing in ranges {
            if existing.upperBound < merged.lowerBound || merged.upperBound < existing.lowerBound {
                kept.append(existing)
            } else {
                merged = min(existing.lowerBound, merged.lowerBound)..<max(existing.upperBound, merged.upperBound)
            }
        }
        kept.append(merged)
        kept.sort { $0.lowerBound < $1.lowerBound }
        ranges = kept
    }

    /// Whether every byte of an image of `size` bytes was acknowledged (never for an empty image,
    /// which has no bytes to acknowledge: the state machine consumes it when a transfer of it ends whole).
    func covers(size: Int64) -> Bool {
        guard size > 0 else { return false }
        return ranges.contains { $0.lowerBound <= 0 && $0.upperBound >= size }
    }

    /// How many bytes are acknowledged.
    var count: Int64 { ranges.reduce(0) { $0 + Int64($1.count) } }

    /// `a-b,c-d` (half-open), as the ledger keeps it; empty when nothing was acknowledged.
    var text: String {
        ranges.map { "\($0.lowerBound)-\($0.upperBound)" }.joined(separator: ",")
    }

    /// Reads `text`; nil for text that is not a coverage (a ledger must not turn bad data into bytes).
    init?(text: String) {
        self.init()
        guard !text.isEmpty else { return }
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
            guard bounds.count == 2, let low = Int64(bounds[0]), let high = Int64(bounds[1]), low >= 0, low < high else { return nil }
            add(low..<high)
        }
    }
}
