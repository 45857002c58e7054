import AsyncHTTPClient
import Crypto
import Foundation
import Logging
import NIOCore
import RelayProtocol

/// Splits an image at the job's chunk cap, PUTs each chunk with its SHA-256 (a few at a time),
/// retries network errors and 5xx with backoff, then POSTs `complete`.
public struct ChunkUploader: Sendable {
    /// How hard the uploader tries.
    public struct Configuration: Sendable {
        /// Attempts per request, the first included.
        public var maximumAttempts: Int = 5
        /// Wait before the first retry; doubled each time.
        public var initialBackoff: Duration = .milliseconds(100)
        /// Longest wait between retries.
        public var maximumBackoff: Duration = .seconds(2)
        /// Chunks in flight at once; more than one means chunks may arrive out of order, which the gateway accepts.
        public var parallelism: Int = 4
        /// Time allowed for one request.
        public var requestTimeout: Duration = .seconds(30)

        /// The defaults.
        public init() {}
    }

    private let httpClient: HTTPClient
    private let configuration: Configuration
    private let logger: Logger

    /// Makes an uploader.
    public init(httpClient: HTTPClient = .shared, configuration: Configuration = .init(), logger: Logger = Logger(label: "uploader")) {
        self.httpClient = httpClient
        self.configuration = configuration
        self.logger = logger
    }

    /// Uploads `image` for the job the event names and completes it; returns the manifest it completed with.
    @discardableResult
    public func upload(_ image: [UInt8], contentType: String, for event: InvocationEvent) async throws -> CompleteRequest {
        let (chunkCount, digest) = try await put(image, for: event)
        let manifest = CompleteRequest(chunks: chunkCount, bytes: Int64(image.count), sha256: digest.hex, contentType: contentType)
        try await complete(manifest, for: event)
        return manifest
    }

    /// PUTs every chunk of `image` (a few at a time, so they may arrive out of order); returns the chunk count.
    @discardableResult
    public func uploadChunks(_ image: [UInt8], for event: InvocationEvent) async throws -> Int {
        try await put(image, for: event).chunks
    }

    /// PUTs the chunks and hashes the whole image on the way, a chunk as it is handed out, so the
    /// image's digest is ready when the last upload ends instead of costing a pass of its own after it.
    private func put(_ image: [UInt8], for event: InvocationEvent) async throws -> (chunks: Int, digest: ContentDigest) {
        guard event.chunkSize > 0 else { throw FunctionError(errorType: "InvalidEvent", errorMessage: "chunkSize must be positive") }
        let chunkCount = max(1, (image.count + event.chunkSize - 1) / event.chunkSize)
        let parallelism = max(1, configuration.parallelism)
        var whole = SHA256()
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = 0
            func addNext(_ group: inout ThrowingTaskGroup<Void, any Error>) {
                let index = next
                next += 1
                let start = index * event.chunkSize
                let end = min(image.count, start + event.chunkSize)
                let chunk = ByteBuffer(bytes: image[start..<end])
                group.addTask { try await self.putChunk(chunk, digest: ContentDigest(of: image[start..<end]), index: index, event: event) }
                image[start..<end].withUnsafeBytes { whole.update(bufferPointer: $0) }
            }
            while next < min(parallelism, chunkCount) { addNext(&group) }
            while try await group.next() != nil {
                if next < chunkCount { addNext(&group) }
            }
        }
        return (chunkCount, ContentDigest(whole.finalize()))
    }

    /// POSTs the manifest that ends the upload; the gateway verifies it against what it stored.
    public func complete(_ manifest: CompleteRequest, for event: InvocationEvent) async throws {
        var request = HTTPClientRequest(url: "\(event.ingestURL)/complete")
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(event.uploadToken)")
        request.headers.add(name: "Content-Type", value: "application/json")
        let body = HTTPClientRequest.Body.bytes(ByteBuffer(bytes: try JSONEncoder().encode(manifest)))
        _ = try await send(request, body: body, what: "complete")
    }

    private func putChunk(_ chunk: ByteBuffer, digest: ContentDigest, index: Int, event: InvocationEvent) async throws {
        var request = HTTPClientRequest(url: "\(event.ingestURL)/chunks/\(index)")
        request.method = .PUT
        request.headers.add(name: "Authorization", value: "Bearer \(event.uploadToken)")
        request.headers.add(name: "Content-Type", value: "application/octet-stream")
        request.headers.add(name: "Content-Digest", value: digest.headerValue)
        _ = try await send(request, body: .bytes(chunk), what: "chunk \(index)")
    }

    /// Sends with retries; returns the body of a 2xx, throws `UploadError` for a final refusal.
    private func send(_ request: HTTPClientRequest, body: HTTPClientRequest.Body?, what: String) async throws -> ByteBuffer {
        var backoff = configuration.initialBackoff
        var attempt = 1
        while true {
            var request = request
            request.body = body
            let outcome: Result<(Int, ByteBuffer, String?), any Error>
            do {
                let response = try await httpClient.execute(request, timeout: .init(configuration.requestTimeout), logger: logger)
                let bytes = try await response.body.collect(upTo: 1 << 20)
                outcome = .success((Int(response.status.code), bytes, response.headers.first(name: "Retry-After")))
            } catch {
                outcome = .failure(error)
            }
            switch outcome {
            case .success(let (status, bytes, _)) where (200..<300).contains(status):
                return bytes
            case .success(let (status, bytes, retryAfter)) where status >= 500 || status == 429:
                guard attempt < configuration.maximumAttempts else { throw UploadError(status: status, body: bytes) }
                if let seconds = retryAfter.flatMap(Int.init) { backoff = max(backoff, .seconds(seconds)) }
                logger.warning("\(what): \(status), retrying (attempt \(attempt + 1))")
            case .success(let (status, bytes, _)):
                throw UploadError(status: status, body: bytes)
            case .failure(let error):
                guard attempt < configuration.maximumAttempts else { throw error }
                logger.warning("\(what): \(error), retrying (attempt \(attempt + 1))")
            }
            try await Task.sleep(for: backoff)
            backoff = min(backoff * 2, configuration.maximumBackoff)
            attempt += 1
        }
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}

/// The gateway refused an upload for good (a 4xx other than 429, or a 5xx after every retry).
public struct UploadError: Error, CustomStringConvertible, Sendable {
    /// HTTP status.
    public var status: Int
    /// The gateway's error code, from its JSON body.
    public var code: String
    /// The gateway's message.
    public var message: String

    init(status: Int, body: ByteBuffer) {
        self.status = status
        if let decoded = try? JSONDecoder().decode(ErrorBody.self, from: Data(body.readableBytesView)) {
            self.code = decoded.error.code
            self.message = decoded.error.message
        } else {
            self.code = "http_\(status)"
            self.message = String(buffer: body)
        }
    }

    /// A readable summary.
    public var description: String { "gateway answered \(status) \(code): \(message)" }
}
