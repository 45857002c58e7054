import Foundation

/// What a fixture expects of every delivery: an image (each field that is set must match) or a failure
/// with a given code.
public struct FixtureExpectation: Codable, Sendable, Hashable {
    /// The image's hex SHA-256.
    public var sha256: String?
    /// The image's size.
    public var bytes: Int64?
    /// The image's media type.
    public var contentType: String?
    /// How many chunks the function sent (depends on the server's chunk size, 1 MiB by default).
    public var chunks: Int?
    /// A file beside the fixture the image must equal byte for byte.
    public var file: String?
    /// The job's error code (`function_error`, `function_timeout`…) when the case is meant to fail.
    public var error: String?

    /// Makes an expectation.
    public init(sha256: String? = nil, bytes: Int64? = nil, contentType: String? = nil, chunks: Int? = nil, file: String? = nil, error: String? = nil) {
        self.sha256 = sha256
        self.bytes = bytes
        self.contentType = contentType
        self.chunks = chunks
        self.file = file
        self.error = error
    }

    /// The expectation `--record` writes for what a delivery produced.
    init(recording outcome: FixtureOutcome) {
        switch outcome {
        case .image(let image): self.init(sha256: image.sha256, bytes: image.bytes, contentType: image.contentType, chunks: image.chunks)
        case .failure(let code, _): self.init(error: code)
        }
    }

    /// Why `outcome` does not meet this expectation, or nil when it does; `directory` holds `file`.
    func mismatches(_ outcome: FixtureOutcome, directory: URL) -> [String] {
        switch outcome {
        case .failure(let code, let message):
            guard let error else { return ["failed: \(code): \(message)"] }
            return code == error ? [] : ["failed with \(code), expected \(error) (\(message))"]
        case .image(let image):
            if let error { return ["produced an image (\(image.bytes) bytes), expected failure \(error)"] }
            var problems: [String] = []
            if let sha256, sha256.lowercased() != image.sha256 { problems.append("sha256 is \(image.sha256), expected \(sha256)") }
            if let bytes, bytes != image.bytes { problems.append("\(image.bytes) bytes, expected \(bytes)") }
            if let contentType, contentType != image.contentType { problems.append("content type \(image.contentType), expected \(contentType)") }
            if let chunks, let actual = image.chunks, chunks != actual { problems.append("\(actual) chunks, expected \(chunks)") }
            if let file {
                let expected = directory.appendingPathComponent(file)
                switch (try? Data(contentsOf: expected), try? Data(contentsOf: image.file)) {
                case (nil, _): problems.append("cannot read \(expected.path)")
                case (let want?, let got?) where want == got: break
                default: problems.append("bytes differ from \(file)")
                }
            }
            return problems
        }
    }
}
