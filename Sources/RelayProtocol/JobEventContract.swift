/// The job event stream's contract (`GET /v1/jobs/{id}/events`), typed once for both sides: the
/// gateway encodes these payloads with Codable and `RelayClient` decodes the same types.
public enum JobEventContract {
    /// The `event:` names, in the order a job's stream can carry them.
    public enum Name: String, CaseIterable, Sendable {
        case queued, started, progress, chunk, ready, done, retrying, failed
    }

    /// `queued`: the job's 1-based place in the FIFO queue, sent whenever it changes.
    public struct Queued: Codable, Sendable, Hashable {
        /// 1 is next.
        public var position: Int
        /// Makes the payload.
        public init(position: Int) { self.position = position }
    }

    /// `started`: the function was invoked for this attempt (1-based).
    public struct Started: Codable, Sendable, Hashable {
        /// The attempt number.
        public var attempt: Int
        /// Makes the payload.
        public init(attempt: Int) { self.attempt = attempt }
    }

    /// `progress`: chunks and bytes the function has uploaded so far in this attempt.
    public struct Progress: Codable, Sendable, Hashable {
        /// Chunks stored.
        public var chunks: Int
        /// Bytes stored.
        public var bytes: Int64
        /// Makes the payload.
        public init(chunks: Int, bytes: Int64) {
            self.chunks = chunks
            self.bytes = bytes
        }
    }

    /// `ready` (retrieve mode): the image can be fetched once at `image`.
    public struct Ready: Codable, Sendable, Hashable {
        /// Path of the one-shot image URL.
        public var image: String
        /// Image size.
        public var bytes: Int64
        /// Hex SHA-256 of the image.
        public var sha256: String
        /// Makes the payload.
        public init(image: String, bytes: Int64, sha256: String) {
            self.image = image
            self.bytes = bytes
            self.sha256 = sha256
        }
    }

    /// `retrying`: the attempt failed and the function runs again as `attempt`; chunks received so far are void.
    public struct Retrying: Codable, Sendable, Hashable {
        /// The new attempt's number.
        public var attempt: Int
        /// Why the last attempt failed.
        public var code: String
        /// A readable explanation.
        public var message: String
        /// Makes the payload.
        public init(attempt: Int, code: String, message: String) {
            self.attempt = attempt
            self.code = code
            self.message = message
        }
    }

    /// `done` (stream mode): every chunk was sent; the whole image's manifest.
    public typealias Done = ImageManifest

    /// `failed`: the job failed, was cancelled or expired.
    public typealias Failed = JobError
}
