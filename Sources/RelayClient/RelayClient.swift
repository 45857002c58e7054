import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOFileSystem
import NIOHTTP1
import RelayProtocol

/// What a client app links to use a ChunkRelay gateway: create jobs, follow them, and retrieve an
/// image once with its SHA-256 verified.
///
/// ```swift
/// let client = RelayClient(baseURL: "http://127.0.0.1:8080")
/// let image = try await client.generate(CreateJobRequest(function: "map-render"), to: URL(fileURLWithPath: "map.png"))
/// print(image.sha256)
/// ```
public struct RelayClient: Sendable {
    /// The gateway's base URL, e.g. `http://127.0.0.1:8080`.
    public let baseURL: String
    private let httpClient: HTTPClient

    /// Makes a client.
    public init(baseURL: String, httpClient: HTTPClient = .shared) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.httpClient = httpClient
    }

    /// `POST /v1/jobs`: queues a job and returns its id, events URL and (retrieve mode) image key.
    ///
    /// ```swift
    /// let job = try await client.createJob(CreateJobRequest(function: "map-render", params: ["seed": .number(7)]))
    /// ```
    public func createJob(_ request: CreateJobRequest) async throws -> JobCreated {
        var http = HTTPClientRequest(url: "\(baseURL)/v1/jobs")
        http.method = .POST
        http.headers.add(name: "Content-Type", value: "application/json")
        http.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(request)))
        return try await send(http, expecting: JobCreated.self)
    }

    /// `GET /v1/jobs/{id}`: the job's state, position, progress and digest (`try await client.job(id).state`).
    public func job(_ id: String) async throws -> JobStatus {
        try await send(HTTPClientRequest(url: "\(baseURL)/v1/jobs/\(id)"), expecting: JobStatus.self)
    }

    /// `DELETE /v1/jobs/{id}`: cancels a queued or running job; its function is stopped (`try await client.cancel(id)`).
    public func cancel(_ id: String) async throws -> JobStatus {
        var http = HTTPClientRequest(url: "\(baseURL)/v1/jobs/\(id)")
        http.method = .DELETE
        return try await send(http, expecting: JobStatus.self)
    }

    /// The job's events, pushed by the gateway; reconnects with `Last-Event-ID` when the connection drops.
    ///
    /// ```swift
    /// for try await event in client.events(job.id) {
    ///     if case .queued(let position) = event { print("position \(position)") }
    ///     if event.isFinal { break }
    /// }
    /// ```
    public func events(_ id: String, lastEventID: String? = nil, maximumReconnects: Int = 5, headers: HTTPHeaders = [:]) -> JobEventStream {
        JobEventStream(
            url: "\(baseURL)/v1/jobs/\(id)/events", httpClient: httpClient, lastEventID: lastEventID, maximumReconnects: maximumReconnects, headers: headers)
    }

    /// Follows a retrieve-mode job until its image is ready; throws `RelayClientError` when the job fails.
    ///
    /// ```swift
    /// let status = try await client.waitUntilReady(job.id) { event in print(event) }
    /// ```
    public func waitUntilReady(_ id: String, onEvent: @Sendable (JobEvent) -> Void = { _ in }) async throws -> JobStatus {
        for try await event in events(id) {
            onEvent(event)
            if case .failed(let error) = event { throw RelayClientError(status: 0, code: error.code, message: error.message) }
            if event.isFinal { break }
        }
        return try await job(id)
    }

    /// Follows a stream-mode job and writes its chunks to `file` as they arrive, resuming after a dropped
    /// connection; the file appears only once the whole image's SHA-256 matched the `done` event.
    ///
    /// ```swift
    /// let job = try await client.createJob(CreateJobRequest(function: "map-render", delivery: .stream))
    /// let image = try await client.streamImage(job.id, to: URL(fileURLWithPath: "map.png"))
    /// ```
    public func streamImage(
        _ id: String, to file: URL, headers: HTTPHeaders = [:], onEvent: @Sendable (JobEvent) -> Void = { _ in }
    ) async throws -> RetrievedImage {
        try await receive(events(id, headers: headers), to: file, onEvent: onEvent)
    }

    /// `GET /v1/functions`: the functions jobs can name, with their Function URLs
    /// (`try await client.functions().map(\.name)`).
    public func functions() async throws -> [FunctionSummary] {
        try await send(HTTPClientRequest(url: "\(baseURL)/v1/functions"), expecting: FunctionList.self).functions
    }

    /// Direct delivery: the image straight from a generator's Function URL (no job, no gateway in the
    /// path), as `started`/`chunk`/`done` events, verified against `done`'s SHA-256 before `file` appears.
    /// A dropped connection cannot resume (the function renders again from the start): it throws.
    ///
    /// ```swift
    /// let url = try await relay.functions().first { $0.name == "map-render" }?.url
    /// let image = try await relay.generateDirect(functionURL: url!, params: ["width": .number(512)], to: file)
    /// ```
    public func generateDirect(
        functionURL: String, params: [String: JSONValue], to file: URL, headers: HTTPHeaders = [:], onEvent: @Sendable (JobEvent) -> Void = { _ in }
    ) async throws -> RetrievedImage {
        var components = URLComponents(string: functionURL)
        components?.queryItems = params.sorted { $0.key < $1.key }.map { key, value in
            switch value {
            case .number(let number): URLQueryItem(name: key, value: number == number.rounded() ? String(Int64(number)) : String(number))
            case .string(let text): URLQueryItem(name: key, value: text)
            case .bool(let flag): URLQueryItem(name: key, value: String(flag))
            default: URLQueryItem(name: key, value: nil)
            }
        }
        guard let url = components?.string else { throw RelayClientError(status: 0, code: "invalid_url", message: "not a URL: \(functionURL)") }
        return try await receive(JobEventStream(url: url, httpClient: httpClient, lastEventID: nil, maximumReconnects: 0, headers: headers), to: file, onEvent: onEvent)
    }

    /// Writes the chunks of an event stream to `file` in order; the file appears only once the whole
    /// image's SHA-256 matched the `done` event.
    private func receive(_ events: JobEventStream, to file: URL, onEvent: @Sendable (JobEvent) -> Void) async throws -> RetrievedImage {
        let partial = FilePath(file.path + ".partial")
        do {
            // One handle for the whole stream: opening the file per chunk cost a few system calls each.
            let (image, done) = try await FileSystem.shared.withFileHandle(forWritingAt: partial, options: .newFile(replaceExisting: true)) { handle in
                var hasher = SHA256()
                var written: Int64 = 0
                var nextIndex = 0
                for try await event in events {
                    switch event {
                    case .chunk(let index, let bytes):
                        guard index == nextIndex else {
                            throw RelayClientError(status: 0, code: "out_of_order", message: "chunk \(index) arrived, \(nextIndex) expected")
                        }
                        try await handle.write(contentsOf: bytes, toAbsoluteOffset: written)
                        hasher.update(data: bytes)
                        written += Int64(bytes.count)
                        nextIndex += 1
                        onEvent(event)
                    case .done(let done):
                        let actual = ContentDigest(hasher.finalize()).hex
                        guard actual == done.sha256.lowercased(), written == done.bytes, nextIndex == done.chunks else {
                            throw RelayClientError(status: 0, code: "digest_mismatch", message: "streamed image has SHA-256 \(actual) and \(written) bytes; the gateway announced \(done.sha256) and \(done.bytes)")
                        }
                        return (RetrievedImage(file: file, bytes: written, sha256: actual, contentType: done.contentType), event)
                    case .failed(let error):
                        throw RelayClientError(status: 0, code: error.code, message: error.message)
                    case .retrying:
                        // The attempt that sent the chunks so far failed; the retry sends its own from 0.
                        try await handle.resize(to: .bytes(0))
                        hasher = SHA256()
                        written = 0
                        nextIndex = 0
                        onEvent(event)
                    default:
                        onEvent(event)
                    }
                }
                throw RelayClientError(status: 0, code: "stream_ended", message: "the event stream ended without done")
            }
            _ = try? await FileSystem.shared.removeItem(at: FilePath(file.path))
            try await FileSystem.shared.moveItem(at: partial, to: FilePath(file.path))
            // `done` is told once the file is in place.
            onEvent(done)
            return image
        } catch {
            _ = try? await FileSystem.shared.removeItem(at: partial)
            throw error
        }
    }

    /// Downloads a one-shot image to `file`, resuming with `Range` if the connection breaks, and checks
    /// its SHA-256 against `expectedSHA256` (the job's digest). The file appears only when it verified.
    ///
    /// `maximumResumes` bounds the breaks in a row that brought no new byte (a break after progress
    /// always resumes); a `429`/`503` with `Retry-After` is waited out. `headers` go with each request
    /// (`X-ChunkRelay-Fault`, say).
    ///
    /// ```swift
    /// let status = try await client.waitUntilReady(job.id)
    /// let image = try await client.retrieve(imagePath: job.image!, expectedSHA256: status.sha256!, to: file)
    /// ```
    public func retrieve(
        imagePath: String, expectedSHA256: String, to file: URL, maximumResumes: Int = 3, headers: HTTPHeaders = [:]
    ) async throws -> RetrievedImage {
        let partial = FilePath(file.path + ".partial")
        var hasher = SHA256()
        var written: Int64 = 0
        var contentType = "application/octet-stream"
        var resumes = 0
        _ = try? await FileSystem.shared.removeItem(at: partial)
        try await FileSystem.shared.withFileHandle(forWritingAt: partial, options: .newFile(replaceExisting: true)) { handle in
            while true {
                var request = HTTPClientRequest(url: "\(baseURL)\(imagePath)")
                request.headers.add(contentsOf: headers)
                if written > 0 { request.headers.add(name: "Range", value: "bytes=\(written)-") }
                let before = written
                do {
                    let response = try await httpClient.execute(request, timeout: .seconds(60))
                    guard response.status == .ok || response.status == .partialContent else {
                        let error = try await RelayClientError(response: response)
                        guard resumes < maximumResumes, let delay = error.retryDelay() else { throw error }
                        resumes += 1
                        try await Task.sleep(for: delay)
                        continue
                    }
                    if response.status == .ok && written > 0 {
                        // The server ignored the range: start over.
                        hasher = SHA256()
                        written = 0
                    }
                    contentType = response.headers.first(name: "Content-Type") ?? contentType
                    for try await part in response.body {
                        part.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
                        try await handle.write(contentsOf: part, toAbsoluteOffset: written)
                        written += Int64(part.readableBytes)
                    }
                    if let total = response.headers.first(name: "Content-Range")?.split(separator: "/").last.flatMap({ Int64($0) }),
                        written < total
                    {
                        throw RelayClientError(status: 0, code: "short_transfer", message: "transfer ended at \(written) of \(total) bytes")
                    }
                    break
                } catch let error as RelayClientError where error.status != 0 {
                    throw error
                } catch {
                    // A break that brought bytes starts the count again: a flaky link that moves is resumed.
                    resumes = written > before ? 1 : resumes + 1
                    guard resumes <= maximumResumes else { throw error }
                }
            }
        }
        let actual = ContentDigest(hasher.finalize()).hex
        guard actual == expectedSHA256.lowercased() else {
            _ = try? await FileSystem.shared.removeItem(at: partial)
            throw RelayClientError(status: 0, code: "digest_mismatch", message: "downloaded image has SHA-256 \(actual), expected \(expectedSHA256)")
        }
        _ = try? await FileSystem.shared.removeItem(at: FilePath(file.path))
        try await FileSystem.shared.moveItem(at: partial, to: FilePath(file.path))
        return RetrievedImage(file: file, bytes: written, sha256: actual, contentType: contentType)
    }

    /// The common case in one call: creates a job for `function`, follows it, and writes the verified
    /// image to `file`; `onEvent` sees each event (queue position, progress, chunks).
    ///
    /// ```swift
    /// let image = try await client.generate("map-render", params: ["width": .number(512)], delivery: .stream, to: file) { event in
    ///     if case .progress(let chunks, _) = event { print("\(chunks) chunks") }
    /// }
    /// ```
    public func generate(
        _ function: String, params: [String: JSONValue] = [:], delivery: DeliveryMode = .retrieve, to file: URL,
        onEvent: @Sendable (JobEvent) -> Void = { _ in }
    ) async throws -> RetrievedImage {
        try await generate(CreateJobRequest(function: function, params: params, delivery: delivery), to: file, onEvent: onEvent)
    }

    /// Creates a job, follows it, and writes the verified image to `file`, by either delivery mode.
    ///
    /// Cancelling the calling task cancels the job (`DELETE`), so its function stops, and throws
    /// `CancellationError`.
    ///
    /// ```swift
    /// let image = try await client.generate(CreateJobRequest(function: "map-render"), to: URL(fileURLWithPath: "map.png"))
    /// ```
    public func generate(
        _ request: CreateJobRequest, to file: URL, onEvent: @Sendable (JobEvent) -> Void = { _ in }
    ) async throws -> RetrievedImage {
        let created = try await createJob(request)
        do {
            switch request.delivery {
            case .stream:
                return try await streamImage(created.id, to: file, onEvent: onEvent)
            case .retrieve:
                let status = try await waitUntilReady(created.id, onEvent: onEvent)
                guard let image = created.image ?? status.image, let sha256 = status.sha256 else {
                    throw RelayClientError(status: 0, code: "no_image", message: "job \(created.id) has no image")
                }
                return try await retrieve(imagePath: image, expectedSHA256: sha256, to: file)
            }
        } catch where Task.isCancelled {
            // The caller gave up: cancel the job too, so its function stops and its slot frees. The request
            // runs in a task of its own (this one is cancelled, and would cancel it) and is awaited here.
            let id = created.id
            await Task.detached { [self] in _ = try? await cancel(id) }.value
            // Whatever the transfer broke with, the caller is told what happened: it was cancelled.
            throw CancellationError()
        }
    }

    /// Sends a request, waiting out a `429`/`503` with `Retry-After` up to `maximumRetries` times (a
    /// refused request did nothing: sending it again is safe).
    private func send<T: Decodable>(_ request: HTTPClientRequest, expecting: T.Type, maximumRetries: Int = 4) async throws -> T {
        var retries = 0
        while true {
            let response = try await httpClient.execute(request, timeout: .seconds(30))
            guard (200..<300).contains(Int(response.status.code)) else {
                let error = try await RelayClientError(response: response)
                guard retries < maximumRetries, let delay = error.retryDelay() else { throw error }
                retries += 1
                try await Task.sleep(for: delay)
                continue
            }
            let body = try await response.body.collect(upTo: 4 << 20)
            return try JSONDecoder().decode(T.self, from: Data(body.readableBytesView))
        }
    }
}

/// An image written to disk and verified.
public struct RetrievedImage: Sendable, Hashable {
    /// Where it was written.
    public var file: URL
    /// Its size.
    public var bytes: Int64
    /// Its hex SHA-256, equal to the gateway's.
    public var sha256: String
    /// Its media type.
    public var contentType: String
}

/// An error from the gateway (`status` and its JSON `code`/`message`) or from verification (`status` 0).
public struct RelayClientError: Error, CustomStringConvertible, Sendable {
    /// HTTP status, or 0 when the error arose in the client.
    public var status: Int
    /// The error code.
    public var code: String
    /// The message.
    public var message: String
    /// How long the server asked to wait before trying again (`Retry-After` with a `429` or `503`).
    public var retryAfter: Duration?

    /// Makes an error.
    public init(status: Int, code: String, message: String, retryAfter: Duration? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
    }

    init(response: HTTPClientResponse) async throws {
        let body = try await response.body.collect(upTo: 1 << 20)
        if let decoded = try? JSONDecoder().decode(ErrorBody.self, from: Data(body.readableBytesView)) {
            self.init(status: Int(response.status.code), code: decoded.error.code, message: decoded.error.message)
        } else {
            self.init(status: Int(response.status.code), code: "http_\(response.status.code)", message: String(buffer: body))
        }
        if status == 429 || status == 503, let seconds = response.headers.first(name: "Retry-After").flatMap({ Int($0) }), seconds >= 0 {
            retryAfter = .seconds(seconds)
        }
    }

    /// How long to wait before sending the request again, when the server said it may succeed then
    /// (`429`/`503` with a `Retry-After` of at most `limit`); nil: do not retry.
    func retryDelay(limit: Duration = .seconds(30)) -> Duration? {
        guard let retryAfter, retryAfter <= limit else { return nil }
        return retryAfter
    }

    /// A readable summary.
    public var description: String { status == 0 ? "\(code): \(message)" : "\(status) \(code): \(message)" }
}
