import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOFileSystem
import RelayProtocol
import ServiceLifecycle

extension Gateway {
    static let lastEventIDHeader = HTTPField.Name("Last-Event-ID")!

    /// What one event stream has already told its client.
    struct EventCursor {
        var position: Int?
        /// The attempt the client has chunks of (0: none yet).
        var startedAttempt = 0
        var progress: (chunks: Int, bytes: Int64)?
        /// The last chunk index sent (stream mode); a resume starts after the client's `Last-Event-ID`.
        var lastChunk: Int
    }

    /// A chunk event's id: the chunk index, prefixed with the attempt after a retry (`2:5`), so that a
    /// client resuming with an id of an abandoned attempt is told to start over rather than resumed into
    /// another attempt's bytes.
    static func chunkEventID(attempt: Int, index: Int) -> String {
        attempt <= 1 ? String(index) : "\(attempt):\(index)"
    }

    /// Parses `Last-Event-ID`: `n` (attempt 1) or `a:n`.
    static func parseEventID(_ text: String) -> (attempt: Int, index: Int)? {
        // Digits only (and `-1`, "before the first chunk"): `Int` alone would also take `+5`.
        guard text.utf8.allSatisfy({ (0x30...0x39).contains($0) || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: "-") }) else { return nil }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        switch parts.count {
        case 1: return Int(parts[0]).flatMap { $0 >= -1 ? (1, $0) : nil }
        case 2:
            guard let attempt = Int(parts[0]), attempt >= 1, let index = Int(parts[1]), index >= -1 else { return nil }
            return (attempt, index)
        default: return nil
        }
    }

    /// `GET /v1/jobs/{id}/events`: the job's life as Server-Sent Events, pushed as it happens.
    ///
    /// Nothing is buffered per subscriber: each change signal makes the stream read what it has not sent
    /// yet from the ledger and the spool, so a slow reader only falls behind on disk.
    func events(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let job = try await existingJob(context)
        // The header (an EventSource reconnecting) wins over the query (a page's first connection); a
        // malformed value is refused wherever it is, and an empty one means "from the start".
        var resume: (attempt: Int, index: Int)?
        for text in [request.uri.queryParameters.get("lastEventId"), request.headers[Self.lastEventIDHeader]] {
            guard let text, !text.isEmpty else { continue }
            guard let parsed = Self.parseEventID(text) else {
                throw GatewayError(.badRequest, "invalid_last_event_id", "Last-Event-ID must be a chunk event id (`n` or `attempt:n`)")
            }
            resume = parsed
        }
        if job.deliveryMode == .stream, job.jobState == .done, await !spool.exists(jobId: job.id, attempt: job.attempt) {
            throw GatewayError(.gone, "stream_expired", "this stream finished and its chunks are no longer kept; it cannot be resumed")
        }
        let (subscriber, signals) = feed.subscribe(job.id)
        let resumeFrom = resume
        let body = ResponseBody { [self] writer in
            defer { feed.unsubscribe(job.id, id: subscriber) }
            var cursor = EventCursor(startedAttempt: resumeFrom?.attempt ?? 0, lastChunk: resumeFrom?.index ?? -1)
            try await writer.write(ByteBuffer(string: "retry: \(configuration.reconnectMilliseconds)\n\n"))
            var finished = try await emitPending(jobId: job.id, cursor: &cursor, writer: &writer)
            if !finished {
                // Ends on graceful shutdown too, so an open stream never holds the server up.
                for await signal in signals.cancelOnGracefulShutdown() {
                    if case .heartbeat = signal { try await writer.write(ByteBuffer(string: ServerSentEvent.comment())) }
                    finished = try await emitPending(jobId: job.id, cursor: &cursor, writer: &writer)
                    if finished { break }
                }
            }
            try await writer.finish(nil)
        }
        return Response(
            status: .ok,
            headers: [.contentType: "text/event-stream", .cacheControl: "no-cache", HTTPField.Name("X-Accel-Buffering")!: "no"],
            body: body
        )
    }

    /// Writes every event the client has not had yet; returns true once a final event was written.
    func emitPending(jobId: String, cursor: inout EventCursor, writer: inout any ResponseBodyWriter) async throws -> Bool {
        guard let job = try await store.job(id: jobId) else {
            try await send(ServerSentEvent(event: "failed", data: Self.jsonText(JobError(code: "job_not_found", message: "the job is gone"))), to: &writer)
            return true
        }
        switch job.jobState {
        case .queued:
            let position = try await store.position(of: job)
            if cursor.position != position {
                cursor.position = position
                try await send(ServerSentEvent(event: "queued", data: #"{"position":\#(position)}"#), to: &writer)
            }
            return false
        case .running:
            try await sendStarted(job, cursor: &cursor, writer: &writer)
            if job.deliveryMode == .stream {
                try await sendChunks(job, cursor: &cursor, writer: &writer)
            }
            let summary = try await store.chunkSummary(jobId: job.id, attempt: job.attempt, chunkSize: job.chunkSize)
            if cursor.progress?.chunks != summary.count || cursor.progress?.bytes != summary.bytes {
                cursor.progress = (summary.count, summary.bytes)
                try await send(ServerSentEvent(event: "progress", data: #"{"bytes":\#(summary.bytes),"chunks":\#(summary.count)}"#), to: &writer)
            }
            return false
        case .ready:
            try await sendStarted(job, cursor: &cursor, writer: &writer)
            let ready = #"{"bytes":\#(job.totalBytes ?? 0),"image":"/v1/images/\#(job.imageKey ?? "")","sha256":"\#(job.sha256 ?? "")"}"#
            try await send(ServerSentEvent(event: "ready", data: ready), to: &writer)
            return true
        case .done:
            try await sendStarted(job, cursor: &cursor, writer: &writer)
            if job.deliveryMode == .stream {
                try await sendChunks(job, cursor: &cursor, writer: &writer)
            }
            let done = DoneEvent(chunks: job.totalChunks ?? 0, bytes: job.totalBytes ?? 0, sha256: job.sha256 ?? "", contentType: job.contentType ?? "")
            try await send(ServerSentEvent(event: "done", data: Self.jsonText(done)), to: &writer)
            return true
        case .failed, .cancelled, .expired:
            let error = job.errorCode.map { JobError(code: $0, message: job.errorMessage ?? "") }
                ?? JobError(code: job.jobState.rawValue, message: "the job was \(job.jobState.rawValue)")
            try await send(ServerSentEvent(event: "failed", data: Self.jsonText(error)), to: &writer)
            return true
        }
    }

    private func sendStarted(_ job: JobRecord, cursor: inout EventCursor, writer: inout any ResponseBodyWriter) async throws {
        guard cursor.startedAttempt != job.attempt else { return }
        if cursor.startedAttempt != 0 {
            // The client saw (or resumed with chunks of) an attempt that failed: it must drop them.
            let failure = JobError(code: job.errorCode ?? "retrying", message: job.errorMessage ?? "")
            let data = #"{"attempt":\#(job.attempt),"code":\#(Self.jsonText(failure.code)),"message":\#(Self.jsonText(failure.message))}"#
            try await send(ServerSentEvent(event: "retrying", data: data), to: &writer)
            cursor.lastChunk = -1
            cursor.progress = nil
        }
        cursor.startedAttempt = job.attempt
        try await send(ServerSentEvent(event: "started", data: #"{"attempt":\#(job.attempt)}"#), to: &writer)
    }

    /// Sends, in index order, every spooled chunk after the cursor; stops at the first gap (a later
    /// chunk that arrived early waits for the ones before it).
    private func sendChunks(_ job: JobRecord, cursor: inout EventCursor, writer: inout any ResponseBodyWriter) async throws {
        while let chunk = try await store.chunk(jobId: job.id, attempt: job.attempt, index: cursor.lastChunk + 1) {
            let bytes = try await spool.readChunk(jobId: job.id, attempt: job.attempt, offset: Int64(chunk.idx) * Int64(job.chunkSize), length: chunk.size)
            let id = Self.chunkEventID(attempt: job.attempt, index: chunk.idx)
            let length = ServerSentEvent.base64EventLength(event: "chunk", id: id, payloadCount: bytes.readableBytes)
            var event = ByteBuffer()
            event.reserveCapacity(length)
            event.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { output in
                bytes.withUnsafeReadableBytes { payload in
                    ServerSentEvent.encodeBase64Event(event: "chunk", id: id, payload: payload, into: output)
                }
            }
            try await writer.write(event)
            cursor.lastChunk = chunk.idx
        }
    }

    private func send(_ event: ServerSentEvent, to writer: inout any ResponseBodyWriter) async throws {
        try await writer.write(ByteBuffer(bytes: event.encodedBytes()))
    }

    static func jsonText(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? String(decoding: encoder.encode(value), as: UTF8.self)) ?? "{}"
    }
}
