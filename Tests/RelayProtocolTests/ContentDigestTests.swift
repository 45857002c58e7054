import Foundation
import RelayProtocol
import Testing

@Suite(.timeLimit(.minutes(5))) struct ContentDigestTests {
    @Test func matchesTheRFC9530Example() throws {
        // RFC 9530 Appendix B.1: the digest of {"hello": "world"}.
        let digest = ContentDigest(of: Array(#"{"hello": "world"}"#.utf8))
        #expect(digest.headerValue == "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:")
        #expect(ContentDigest(header: digest.headerValue) == digest)
    }

    @Test func picksSHA256AmongSeveralMembers() throws {
        let digest = ContentDigest(of: Array("abc".utf8))
        let header = "sha-512=:AAAA:, sha-256=:\(digest.base64):"
        #expect(ContentDigest(header: header) == digest)
        // Parameters are allowed; keys are lowercase in an RFC 9651 dictionary, so `SHA-256` is malformed.
        #expect(ContentDigest(header: "sha-256=:\(digest.base64):;note=1") == digest)
        #expect(ContentDigest(header: "SHA-256=:\(digest.base64):") == nil)
    }

    @Test(arguments: ["", "sha-256=abc", "sha-256=::", "sha-256=:!!!!:", "md5=:AAAA:", "sha-256=:AAAA:"])
    func rejectsMalformedHeaders(_ header: String) {
        #expect(ContentDigest(header: header) == nil)
    }

    @Test func hexRoundTrips() throws {
        let digest = ContentDigest(of: Array("abc".utf8))
        #expect(digest.hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(ContentDigest(hex: digest.hex) == digest)
        #expect(ContentDigest(hex: digest.hex.uppercased()) == digest)
        #expect(ContentDigest(hex: String(digest.hex.dropLast())) == nil)
        #expect(ContentDigest(hex: "zz" + digest.hex.dropFirst(2)) == nil)
    }
}

@Suite(.timeLimit(.minutes(5))) struct RandomTokenTests {
    @Test func tokensAreURLSafeAndDistinct() {
        let tokens = (0..<2000).map { _ in RandomToken.make() }
        #expect(Set(tokens).count == tokens.count)
        for token in tokens {
            #expect(token.count == 22)
            #expect(RandomToken.isWellFormed(token))
            #expect(token.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) == token)
        }
    }

    @Test(arguments: ["", "short", "../../etc/passwd00000000", "AAAAAAAAAAAAAAAAAAAAA/", "AAAAAAAAAAAAAAAAAAAAAAA"])
    func rejectsWhatIsNotAToken(_ text: String) {
        #expect(!RandomToken.isWellFormed(text))
    }

    @Test func base64URLMatchesFoundation() {
        for length in 0..<40 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 * 37 + 250) }
            let expected = Data(bytes).base64EncodedString()
                .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
                .replacingOccurrences(of: "=", with: "")
            #expect(Base64URL.encode(bytes) == expected)
        }
    }
}

@Suite(.timeLimit(.minutes(5))) struct JobModelTests {
    @Test func createJobRequestDefaultsToRetrieveWithNoParams() throws {
        let request = try JSONDecoder().decode(CreateJobRequest.self, from: Data(#"{"function":"map-render"}"#.utf8))
        #expect(request == CreateJobRequest(function: "map-render", params: [:], delivery: .retrieve))
    }

    @Test func integersStayIntegersOnTheWire() throws {
        let params: [String: JSONValue] = ["width": .number(4096), "ratio": .number(0.5), "name": .string("x"), "flag": .bool(true)]
        let text = String(decoding: try JSONEncoder().encode(params), as: UTF8.self)
        #expect(text.contains(#""width":4096"#))
        #expect(text.contains(#""ratio":0.5"#))
        #expect(try JSONDecoder().decode([String: JSONValue].self, from: Data(text.utf8)) == params)
    }

    @Test func commandLineValues() {
        #expect(JSONValue(commandLineValue: "4096") == .number(4096))
        #expect(JSONValue(commandLineValue: "-3") == .number(-3))
        #expect(JSONValue(commandLineValue: "true") == .bool(true))
        #expect(JSONValue(commandLineValue: "null") == .null)
        #expect(JSONValue(commandLineValue: "forest") == .string("forest"))
        #expect(JSONValue(commandLineValue: "+1") == .string("+1"))
        #expect(JSONValue(commandLineValue: "4096").intValue == 4096)
    }
}
