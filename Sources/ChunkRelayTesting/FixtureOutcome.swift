import Foundation

/// What one delivery of a fixture produced.
public enum FixtureOutcome: Sendable, Hashable {
    /// A verified image on disk.
    case image(Image)
    /// The job (or the Function URL) failed with this code and message.
    case failure(code: String, message: String)

    /// A verified image and how it came.
    public struct Image: Sendable, Hashable {
        /// Where it was written.
        public var file: URL
        /// Its size.
        public var bytes: Int64
        /// Its hex SHA-256.
        public var sha256: String
        /// Its media type.
        public var contentType: String
        /// Chunks the function sent, when the delivery tells.
        public var chunks: Int?
    }
}
