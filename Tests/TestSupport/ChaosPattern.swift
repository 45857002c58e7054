/// The bytes the `chaos` function writes, derived here independently of it (a test's expectation must
/// not come from the code under test): byte `i` of a piece with seed `s` is `i × 31 + s`.
public enum ChaosPattern {
    /// One piece: what `upload` sends (seed 7) or one `stream` chunk (seed = its index).
    public static func bytes(_ count: Int, seed: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed) }
    }

    /// A whole `stream` response: `chunks` pieces of `bytes` each, seeded by their index.
    public static func streamed(chunks: Int, bytes: Int) -> [UInt8] {
        (0..<chunks).flatMap { Self.bytes(bytes, seed: $0) }
    }
}
