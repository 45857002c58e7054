import Foundation
import RelayProtocol

/// What goes wrong with one response, on purpose: `X-ChunkRelay-Fault: reset-after=1MiB`, or a rule's
/// `fault`. Parts combine, separated by commas (`latency=200ms, bandwidth=256KiB/s, reset-after=2MiB`).
///
/// | part | effect |
/// | --- | --- |
/// | `latency=D` | waits D before answering (before the head) |
/// | `status=503` / `status=429`, `retry-after=S` | answers that status with `Retry-After: S` (default 1) instead |
/// | `reset-after=N` | after N body bytes reached the client's TCP, resets the connection (RST) |
/// | `close-after=N` | after N body bytes, closes the connection cleanly (FIN): a short body |
/// | `stall-after=N`, `stall-for=D` | after N body bytes, sends nothing for D (default: until the client leaves) |
/// | `bandwidth=N/s` | sends the body at N bytes a second at most |
///
/// Sizes are bytes or `KiB`/`MiB`/`GiB` (`KB`/`MB` alike: powers of two); durations `ms`, `s` or `m`.
public struct Fault: Sendable, Hashable, CustomStringConvertible {
    /// Wait before the head.
    public var latency: Duration?
    /// The status answered instead of the response (429 or 5xx).
    public var status: Int?
    /// `Retry-After` seconds with `status`.
    public var retryAfter: Int = 1
    /// How the body breaks off, and after how many of its bytes.
    public var breakOff: BreakOff?
    /// Body bytes sent before the stall.
    public var stallAfter: Int64?
    /// How long the stall lasts; nil: until the client leaves.
    public var stallFor: Duration?
    /// Body bytes a second at most.
    public var bandwidth: Int64?

    /// How a body is cut short.
    public enum BreakOff: Sendable, Hashable {
        /// A TCP reset once the bytes before it were acknowledged.
        case reset(after: Int64)
        /// A clean close once the bytes before it were acknowledged.
        case close(after: Int64)

        /// The body bytes sent before it.
        public var after: Int64 {
            switch self {
            case .reset(let after), .close(let after): after
            }
        }
    }

    /// Whether it changes how the body is sent (and so needs the connection's shaper).
    public var shapesBody: Bool { breakOff != nil || stallAfter != nil || bandwidth != nil }

    /// Reads a fault as the header and rules write it; the error says which part is wrong.
    public init(parsing text: String) throws(FaultSyntaxError) {
        var seen = Set<String>()
        let parts = text.split(whereSeparator: { $0 == "," || $0 == ";" }).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !parts.isEmpty else { throw FaultSyntaxError("a fault is empty; use e.g. reset-after=1MiB") }
        for part in parts {
            let pair = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            let name = pair[0].lowercased()
            guard pair.count == 2 || name == "stall" else { throw FaultSyntaxError("'\(part)' has no value (\(name)=…)") }
            let value = pair.count == 2 ? pair[1] : ""
            guard seen.insert(name).inserted else { throw FaultSyntaxError("'\(name)' is given twice") }
            switch name {
            case "latency": latency = try Self.duration(value, of: name)
            case "status":
                guard let code = Int(value), code == 429 || (500...599).contains(code) else {
                    throw FaultSyntaxError("status=\(value): a fault's status is 429 or 5xx")
                }
                status = code
            case "retry-after":
                guard let seconds = Int(value), (0...3600).contains(seconds) else { throw FaultSyntaxError("retry-after=\(value): whole seconds, 0...3600") }
                retryAfter = seconds
            case "reset-after", "close-after":
                guard breakOff == nil else { throw FaultSyntaxError("reset-after and close-after cannot both be given") }
                let bytes = try Self.size(value, of: name)
                breakOff = name == "reset-after" ? .reset(after: bytes) : .close(after: bytes)
            case "stall": stallAfter = 0
            case "stall-after": stallAfter = try Self.size(value, of: name)
            case "stall-for": stallFor = try Self.duration(value, of: name)
            case "bandwidth":
                let rate = value.lowercased().hasSuffix("/s") ? String(value.dropLast(2)) : value
                let bytes = try Self.size(rate, of: name)
                guard bytes > 0 else { throw FaultSyntaxError("bandwidth=\(value): at least 1 byte a second") }
                bandwidth = bytes
            default:
                throw FaultSyntaxError("unknown fault '\(name)'; known: latency, status, retry-after, reset-after, close-after, stall, stall-after, stall-for, bandwidth")
            }
        }
        if stallFor != nil, stallAfter == nil { stallAfter = 0 }
        if status != nil, shapesBody { throw FaultSyntaxError("status answers instead of the body: it cannot be combined with body faults") }
        if seen.contains("retry-after"), status == nil { throw FaultSyntaxError("retry-after goes with status=429 or 5xx") }
    }

    /// The fault as it is written.
    public var description: String {
        var parts: [String] = []
        if let latency { parts.append("latency=\(Self.text(latency))") }
        if let status { parts += ["status=\(status)", "retry-after=\(retryAfter)"] }
        switch breakOff {
        case .reset(let after): parts.append("reset-after=\(after)")
        case .close(let after): parts.append("close-after=\(after)")
        case nil: break
        }
        if let stallAfter { parts.append("stall-after=\(stallAfter)") }
        if let stallFor { parts.append("stall-for=\(Self.text(stallFor))") }
        if let bandwidth { parts.append("bandwidth=\(bandwidth)/s") }
        return parts.joined(separator: ", ")
    }

    private static func size(_ text: String, of name: String) throws(FaultSyntaxError) -> Int64 {
        guard let bytes = ByteSize.parse(text) else { throw FaultSyntaxError("\(name)=\(text): a size is bytes, or a number with KiB, MiB or GiB") }
        return bytes
    }

    private static func duration(_ text: String, of name: String) throws(FaultSyntaxError) -> Duration {
        let lower = text.lowercased()
        let units: [(String, Double)] = [("ms", 1e-3), ("s", 1), ("m", 60)]
        for (suffix, scale) in units where lower.hasSuffix(suffix) {
            if let number = Double(lower.dropLast(suffix.count)), number >= 0, number * scale <= 86_400 {
                return .milliseconds(Int64((number * scale * 1000).rounded()))
            }
        }
        throw FaultSyntaxError("\(name)=\(text): a duration is a number with ms, s or m, at most a day")
    }

    private static func text(_ duration: Duration) -> String {
        let milliseconds = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        return milliseconds % 1000 == 0 ? "\(milliseconds / 1000)s" : "\(milliseconds)ms"
    }
}
