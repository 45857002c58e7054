import Foundation
import FuzzSupport
import RelayProtocol

// libFuzzer target for what the gateway parses of a function's upload before it reads a body: the
// chunk index from the path, `Content-Digest` (an RFC 9651 dictionary), `Content-Length` against the
// cap, and the `complete` manifest. Built with `.ci/fuzz`; without `-DFUZZING` it replays files.

/// Checks one input; a broken property stops the process (a finding).
func checkIngest(_ bytes: [UInt8]) {
    // Fields separated by NUL: index, Content-Digest, Content-Length, manifest JSON; the first byte picks the cap.
    let parts = bytes.split(separator: 0, maxSplits: 4, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
    let chunkSize = RelayLimits.minimumChunkSize << Int((bytes.first ?? 0) % 13)
    let index = parts.count > 1 ? parts[1] : ""
    let digest = parts.count > 2 ? parts[2] : nil
    let length = parts.count > 3 ? parts[3] : nil
    if let head = try? ChunkUploadHead(indexText: index, contentDigest: digest, contentLength: length, chunkSize: chunkSize) {
        precondition(head.index >= 0 && String(head.index) == index, "index \(head.index) from \(index.debugDescription)")
        precondition(Int64(head.index) * Int64(chunkSize) < RelayLimits.maximumImageBytes)
        precondition(ContentDigest(header: head.digest.headerValue) == head.digest, "digest does not survive its own header")
        precondition((head.declaredLength ?? 0) <= chunkSize)
    }
    if let digest, let parsed = ContentDigest(header: digest) {
        precondition(parsed.bytes.count == 32)
        precondition(ContentDigest(hex: parsed.hex) == parsed)
    }
    if parts.count > 4, let manifest = try? JSONDecoder().decode(ImageManifest.self, from: Data(parts[4].utf8)),
        let declared = try? manifest.validated()
    {
        precondition(declared.hex == manifest.sha256.lowercased())
        precondition(manifest.chunks >= 1 && manifest.bytes >= 0 && ImageManifest.isMediaType(manifest.contentType))
    }
}

func fuzzIngest(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    checkIngest(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

@main
enum Main {
    static func main() throws {
        try FuzzMain.run(fuzz: fuzzIngest, replay: checkIngest)
    }
}
