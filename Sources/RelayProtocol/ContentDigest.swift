import Crypto
import Foundation
import RawStructuredFieldValues

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

    /// Parses a `Content-Digest` header value (an RFC 9651 Dictionary) and picks its `sha-256` member;
    /// other algorithms are ignored. Nil when the field is malformed or has no valid `sha-256` member.
    public init?(header: String) {
        var parser = StructuredFieldValueParser(Array(header.utf8))
        guard let dictionary = try? parser.parseDictionaryFieldValue(),
            case .item(let item)? = dictionary["sha-256"],
            case .undecodedByteSequence(let base64) = item.rfc9651BareItem,
            let data = Data(base64Encoded: base64)
        else { return nil }
        self.init(bytes: Array(data))
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
