import Crypto
import Foundation

/// SHA-256 helpers and the RFC 9530 `Content-Digest` header (`sha-256=:<base64>:`).
public struct ContentDigest: Sendable, Hashable {
    /// The 32 raw digest bytes.
    public let bytes: [UInt8]

    /// Wraps 32 raw SHA-256 bytes; `nil` for any other length.
    public init?(bytes: [UInt8]) {
        guard bytes.count == SHA256.byteCount else { return nil }
        self.bytes = bytes
    }

    /// The digest of `data`.
    public init(of data: some DataProtocol) {
        self.bytes = Array(SHA256.hash(data: data))
    }

    /// Wraps a finished hash.
    public init(_ digest: SHA256.Digest) {
        self.bytes = Array(digest)
    }

    /// Parses a `Content-Digest` header value and picks its `sha-256` member; other algorithms are ignored.
    public init?(header: String) {
        // A Dictionary Structured Field: members separated by commas, byte sequences between colons.
        for member in header.split(separator: ",") {
            let trimmed = member.trimmingCharacters(in: .whitespaces)
            guard let equals = trimmed.firstIndex(of: "=") else { continue }
            let name = trimmed[..<equals].lowercased()
            guard name == "sha-256" else { continue }
            var value = trimmed[trimmed.index(after: equals)...]
            guard value.count >= 2, value.first == ":", value.last == ":" else { return nil }
            value = value.dropFirst().dropLast()
            guard let data = Data(base64Encoded: String(value)) else { return nil }
            self.init(bytes: Array(data))
            return
        }
        return nil
    }

    /// Parses 64 lowercase or uppercase hex digits.
    public init?(hex: String) {
        let utf8 = Array(hex.utf8)
        guard utf8.count == SHA256.byteCount * 2 else { return nil }
        var bytes = [UInt8]()
        bytes.reserveCapacity(SHA256.byteCount)
        var index = 0
        while index < utf8.count {
            guard let high = Self.nibble(utf8[index]), let low = Self.nibble(utf8[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        self.bytes = bytes
    }

    /// The header value: `sha-256=:<base64>:`.
    public var headerValue: String { "sha-256=:\(base64):" }

    /// Standard base64 of the digest.
    public var base64: String { Data(bytes).base64EncodedString() }

    /// Lowercase hex of the digest, the form used in JSON bodies and ETags.
    public var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func nibble(_ char: UInt8) -> UInt8? {
        switch char {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return char - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return char - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return char - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
