/// Why a function's upload request was refused before its body was read.
public enum IngestRequestError: Error, Sendable, Hashable {
    /// The chunk index is not a canonical integer in `0..<limit`.
    case invalidIndex(limit: Int)
    /// No `Content-Digest` header.
    case missingDigest
    /// A `Content-Digest` header without a valid `sha-256` byte sequence.
    case invalidDigest
    /// `Content-Length` above the chunk cap.
    case chunkTooLarge(cap: Int, length: Int)
    /// A manifest whose fields are out of range.
    case invalidManifest(String)
}

/// The head of `PUT /v1/jobs/{id}/chunks/{index}`, checked: everything the gateway needs before it reads the body.
public struct ChunkUploadHead: Sendable, Hashable {
    /// The chunk's index.
    public var index: Int
    /// The digest the body must have.
    public var digest: ContentDigest
    /// `Content-Length`, when given (a chunked body has none).
    public var declaredLength: Int?

    /// Checks the index from the path and the headers against the job's chunk cap.
    public init(indexText: String, contentDigest: String?, contentLength: String?, chunkSize: Int) throws(IngestRequestError) {
        let limit = Int(RelayLimits.maximumImageBytes / Int64(max(chunkSize, 1)))
        // Canonical digits only: `+1`, `01` or ` 1` would name the same chunk two ways.
        guard indexText.utf8.count <= 19, indexText.utf8.allSatisfy({ (0x30...0x39).contains($0) }),
            let index = Int(indexText), index < limit, String(index) == indexText
        else { throw .invalidIndex(limit: limit) }
        guard let contentDigest else { throw .missingDigest }
        guard let digest = ContentDigest(header: contentDigest) else { throw .invalidDigest }
        var declaredLength: Int?
        if let contentLength {
            // HTTP has already checked the header's syntax; a value that does not fit an Int is over any cap.
            let length = Int(contentLength) ?? Int.max
            guard length <= chunkSize else { throw .chunkTooLarge(cap: chunkSize, length: length) }
            declaredLength = length
        }
        self.index = index
        self.digest = digest
        self.declaredLength = declaredLength
    }
}

extension ImageManifest {
    /// Checks a `complete` manifest's fields; returns the image digest it announces.
    public func validated() throws(IngestRequestError) -> ContentDigest {
        guard chunks >= 1, bytes >= 0, bytes <= RelayLimits.maximumImageBytes else {
            throw .invalidManifest("chunks must be at least 1 and bytes 0...\(RelayLimits.maximumImageBytes)")
        }
        guard let digest = ContentDigest(hex: sha256) else { throw .invalidManifest("sha256 must be 64 hex digits") }
        guard Self.isMediaType(contentType) else { throw .invalidManifest("contentType must be a media type such as image/png") }
        return digest
    }

    /// `type/subtype`: printable ASCII without spaces, one slash, at most 255 bytes.
    public static func isMediaType(_ text: String) -> Bool {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        return text.utf8.count <= 255 && parts.count == 2 && parts.allSatisfy { part in
            !part.isEmpty && part.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "/") }
        }
    }
}
