import Foundation
import HTTPTypes

/// An AWS X-Ray trace header as Lambda hands it to a function (`Lambda-Runtime-Trace-Id`,
/// `_X_AMZN_TRACE_ID`): `Root=1-<8 hex: epoch seconds>-<24 hex>;Parent=<16 hex>;Sampled=0`.
///
/// The X-Ray SDKs and OpenTelemetry's X-Ray propagator drop a header of any other shape, so a trace
/// begun by a client would be lost at the function.
public struct XRayTraceID: Sendable, Hashable, CustomStringConvertible {
    /// `1-<8 hex>-<24 hex>`.
    public var root: String
    /// The segment the function's work hangs under: 16 hex digits.
    public var parent: String
    /// Whether the trace is sampled (`Sampled=1`).
    public var sampled: Bool

    /// The header's text.
    public var description: String { "Root=\(root);Parent=\(parent);Sampled=\(sampled ? 1 : 0)" }

    /// A trace begun now (no caller sent one), not sampled: nothing here records segments.
    public static func begin(at date: Date = Date()) -> XRayTraceID {
        let seconds = String(UInt32(truncatingIfNeeded: Int64(date.timeIntervalSince1970)), radix: 16)
        let epoch = String(repeating: "0", count: 8 - seconds.count) + seconds
        return XRayTraceID(root: "1-\(epoch)-\(hex(digits: 24))", parent: hex(digits: 16), sampled: false)
    }

    /// The trace an incoming `X-Amzn-Trace-Id` carries, continued under a new segment as Lambda's service
    /// segment does (same Root and sampling decision, a new Parent); a trace begun now when the header is
    /// missing or its Root is not X-Ray's.
    public static func continuing(_ header: String?) -> XRayTraceID {
        guard let header else { return begin() }
        var root: String?
        var sampled = false
        for part in header.split(separator: ";") {
            let pair = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pair.count == 2 else { continue }
            switch pair[0] {
            case "Root": root = pair[1]
            case "Sampled": sampled = pair[1] == "1"
            default: continue
            }
        }
        guard let root, isValidRoot(root) else { return begin() }
        return XRayTraceID(root: root, parent: hex(digits: 16), sampled: sampled)
    }

    /// The request header that carries a caller's trace.
    public static let header = HTTPField.Name("X-Amzn-Trace-Id")!

    /// The trace a request's `X-Amzn-Trace-Id` carries, continued (see `continuing(_:)`).
    public static func continuing(from headers: HTTPFields) -> XRayTraceID {
        continuing(headers[header])
    }

    /// Whether `root` is `1-<8 hex>-<24 hex>`.
    public static func isValidRoot(_ root: String) -> Bool {
        let parts = root.split(separator: "-", omittingEmptySubsequences: false)
        return parts.count == 3 && parts[0] == "1" && parts[1].count == 8 && parts[2].count == 24
            && (parts[1] + parts[2]).allSatisfy(\.isHexDigit)
    }

    private static func hex(digits: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("0123456789abcdef")
        return String((0..<digits).map { _ in alphabet[Int(generator.next() & 15)] })
    }
}
