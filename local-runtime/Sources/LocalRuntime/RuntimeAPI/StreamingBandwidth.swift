/// Lambda's bandwidth for a streamed response, when a function or `serve --aws-streaming-bandwidth`
/// asks for it: the first 6 MB at full speed, then at most 2 MB a second (AWS's "Bandwidth limits for
/// response streaming"; MB as AWS counts bandwidth, 10⁶ bytes). The runtime reads the function's
/// response no faster, so the function's writes wait as they would on Lambda, and a client sees the
/// times it would see in the cloud.
struct StreamingBandwidth: Sendable, Equatable {
    /// AWS's numbers.
    static let aws = StreamingBandwidth(burstBytes: 6_000_000, bytesPerSecond: 2_000_000)

    /// Bytes sent at full speed first.
    let burstBytes: Int
    /// The rate after them.
    let bytesPerSecond: Int

    /// The pace of one response.
    struct Pacer: Sendable {
        let bandwidth: StreamingBandwidth
        /// When the response went past the burst.
        private var burstEnded: ContinuousClock.Instant?

        init(_ bandwidth: StreamingBandwidth) { self.bandwidth = bandwidth }

        /// How long to hold back a piece that brings the response to `total` bytes, at `now`.
        mutating func delay(reaching total: Int, at now: ContinuousClock.Instant) -> Duration {
            guard total > bandwidth.burstBytes else { return .zero }
            let start = burstEnded ?? now
            burstEnded = start
            let due = start + .seconds(Double(total - bandwidth.burstBytes) / Double(bandwidth.bytesPerSecond))
            return due > now ? due - now : .zero
        }
    }
}
