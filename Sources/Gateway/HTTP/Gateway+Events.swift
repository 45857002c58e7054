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

    /// `GET /v1/jobs/{id}/events`: the job's life as Server-Sent Events, pushed as it happens.
    ///
    /// Nothing is buffered per subscriber: each change signal makes the stream read what it has not sent
    /// yet from the ledger and the spool, so a slow reader only falls behind on disk.
    func events(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let job = try await existingJob(context)
        // The header (an EventSource reconnecting) wins over the query (a page's first connection); a
        // malformed value is refused wherever it is, and an empty one means "from the start".
        var resume: ChunkEventID?
        for text in [request.uri.queryParameters.get("lastEventId"), request.headers[Self.lastEventIDHeader]] {
            guard let text, !text.isEmpty else { continue }
            guard let parsed = ChunkEventID(text) else {
                throw GatewayError(.badRequest, .invalidLastEventId, "Last-Event-ID must be a chunk event id (`n` or `attempt:n`)")
            }
            resume = parsed
        }
        if job.delivery == .stream, job.state == .done, await !lifecycle.spool.exists(jobId: job.id, attempt: job.attempt) {
            throw GatewayError(.gone, .streamExpired, "this stream finished and its chunks are no longer kept; it cannot be resumed")
        }
        let resumeFrom = resume
        let body = ResponseBody { [self] writer in
            // Subscribed only here, where the stream runs: a client that resets before the response head never
            // gets this far, and leaving this scope in any way (reset mid-stream included) unsubscribes, so the
            // janitor's "nobody is watching" is always true to the connections.
            let channel = context.channel
            // A stream that ends for any reason but its job's end says so with a `failed` event, never a
            // bare close (a client would take that for a dropped connection and resume into a 410).
            do {
                try await stream(job.id, resumeFrom: resumeFrom, channel: channel, writer: &writer)
            } catch let error as GatewayError {
                try await send(.failed, JobError(code: error.code.rawValue, message: error.message), to: &writer)
            } catch let refused as JobLifecycle.Refused {
                let error = GatewayError(refused.refusal)
                try await send(.failed, JobError(code: error.code.rawValue, message: error.message), to: &writer)
            }
            try await writer.finish(nil)
        }
        return Response(
            status: .ok,
            headers: [.contentType: "text/event-stream", .cacheControl: "no-cache", HTTPField.Name("X-Accel-Buffering")!: "no"],
            body: body
        )
    }

    /// Writes the job's events until it ends, the client leaves or the server shuts down (then the
    /// stream closes without a final event: the job goes on after a restart, and the client resumes).
    private func stream(_ jobId: String, resumeFrom: ChunkEventID?, channel: any Channel, writer: inout any ResponseBodyWriter) async throws {
        try await lifecycle.withSubscription(to: jobId) { subscription in
            // A client that resets while its stream is idle is noticed when the connection closes, not
            // at the next write (a heartbeat, seconds later): the janitor must not count it as watching.
            channel.closeFuture.whenComplete { _ in subscription.end() }
            var cursor = EventCursor(startedAttempt: resumeFrom?.attempt ?? 0, lastChunk: resumeFrom?.index ?? -1)
            try await writer.write(ByteBuffer(string: "retry: \(configuration.reconnectMilliseconds)\n\n"))
            var finished = try await emitPending(jobId: jobId, cursor: &cursor, writer: &writer)
            guard !finished else { return }
            // Ends on graceful shutdown too, so an open stream never holds the server up: the feed ends
            // the wake-ups. (`cancelOnGracefulShutdown()` merged every stream with a shutdown sequence,
            // and that machinery was most of the CPU a move in a 10,000-client queue cost.)
            try await withGracefulShutdownHandler {
                for await _ in subscription.wakeups {
                    let reasons = subscription.reasons()
                    if reasons.contains(.heartbeat) { try await writer.write(ByteBuffer(string: ServerSentEvent.comment())) }
                    if reasons.contains(.changed) {
                        finished = try await emitPending(jobId: jobId, cursor: &cursor, writer: &writer)
                    } else if reasons.contains(.queue), cursor.position != nil {
                        finished = try await emitPosition(jobId: jobId, cursor: &cursor, writer: &writer)
                    }
                    if finished { break }
                }
            } onGracefulShutdown: {
                subscription.end()
            }
        }
    }

    /// The queue moved and this job was waiting: only its place can have changed, and that is known in
    /// memory. A job no longer in the queue is read again in full (its own change wakes it as well).
    private func emitPosition(jobId: String, cursor: inout EventCursor, writer: inout any ResponseBodyWriter) async throws -> Bool {
        guard let position = try await lifecycle.store.queuedPosition(of: jobId) else {
            return try await emitPending(jobId: jobId, cursor: &cursor, writer: &writer)
        }
        if cursor.position != position {
            cursor.position = position
            try await writer.write(Self.queuedEvent(position: position))
        }
        return false
    }

    /// The `queued` event, written directly: every waiting stream sends one on each move of the queue,
    /// and a `JSONEncoder` per event was a fair part of that. A test holds it equal to `send`'s encoding.
    static func queuedEvent(position: Int) -> ByteBuffer {
        ByteBuffer(string: "event: \(JobEventContract.Name.queued.rawValue)\ndata: {\"position\":\(position)}\n\n")
    }

    /// Writes every event the client has not had yet; returns true once a final event was written.
    func emitPending(jobId: String, cursor: inout EventCursor, writer: inout any ResponseBodyWriter) async throws -> Bool {
        guard let job = try await lifecycle.store.job(id: jobId) else {
            try await send(.failed, JobError(code: "job_not_found", message: "the job is gone"), to: &writer)
            return true
        }
        if job.state != .queued { cursor.position = nil }  // queue moves no longer concern it
        switch job.state {
        case .queued:
            let position = try await lifecycle.store.position(of: job)
            if cursor.position != position {
                cursor.position = position
                try await writer.write(Self.queuedEvent(position: position))
            }
            return false
        case .running:
            try await sendStarted(job, cursor: &cursor, writer: &writer)
            if job.delivery == .stream {
                try await sendChunks(job, cursor: &cursor, writer: &writer)
            }
            if cursor.progress?.chunks != job.storedChunks || cursor.progress?.bytes != job.storedBytes {
                cursor.progress = (job.storedChunks, job.storedBytes)
                try await send(.progress, JobEventContract.Progress(chunks: job.storedChunks, bytes: job.storedBytes), to: &writer)
            }
            return false
        case .ready:
            try await sendStarted(job, cursor: &cursor, writer: &writer)
            let ready = JobEventContract.Ready(image: "/v1/images/\(job.imageKey ?? "")", bytes: job.totalBytes ?? 0, sha256: job.sha256 ?? "")
            try await send(.ready, ready, to: &writer)
            return true
        case .done:
            try await sendStarted(job, cursor: &cursor, writer: &writer)
            if job.delivery == .stream {
                try await sendChunks(job, cursor: &cursor, writer: &writer)
            }
            let done = JobEventContract.Done(chunks: job.totalChunks ?? 0, bytes: job.totalBytes ?? 0, sha256: job.sha256 ?? "", contentType: job.contentType ?? "")
            try await send(.done, done, to: &writer)
            return true
        case .failed, .cancelled, .expired:
            let error = job.errorCode.map { JobError(code: $0, message: job.errorMessage ?? "") }
                ?? JobError(code: job.state.rawValue, message: "the job was \(job.state.rawValue)")
            try await send(.failed, error, to: &writer)
            return true
        }
    }

    private func sendStarted(_ job: JobRecord, cursor: inout EventCursor, writer: inout any ResponseBodyWriter) async throws {
        guard cursor.startedAttempt != job.attempt else { return }
        if cursor.startedAttempt != 0 {
            // The client saw (or resumed with chunks of) an attempt that failed: it must drop them.
            let retrying = JobEventContract.Retrying(attempt: job.attempt, code: job.errorCode ?? "retrying", message: job.errorMessage ?? "")
            try await send(.retrying, retrying, to: &writer)
            cursor.lastChunk = -1
            cursor.progress = nil
        }
        cursor.startedAttempt = job.attempt
        try await send(.started, JobEventContract.Started(attempt: job.attempt), to: &writer)
    }

    /// Sends, in index order, every spooled chunk after the cursor; stops at the first gap (a later
    /// chunk that arrived early waits for the ones before it).
    private func sendChunks(_ job: JobRecord, cursor: inout EventCursor, writer: inout any ResponseBodyWriter) async throws {
        // One read of the ledger for everything after the cursor, then the run that follows it without a gap.
        for chunk in try await lifecycle.store.writtenChunks(jobId: job.id, attempt: job.attempt, after: cursor.lastChunk) {
            guard chunk.idx == cursor.lastChunk + 1 else { break }
            let bytes = try await lifecycle.spool.readChunk(jobId: job.id, attempt: job.attempt, index: chunk.idx, chunkSize: job.chunkSize, length: chunk.size)
            let id = ChunkEventID(attempt: job.attempt, index: chunk.idx).description
            let length = ServerSentEvent.base64EventLength(event: JobEventContract.Name.chunk.rawValue, id: id, payloadCount: bytes.readableBytes)
            var event = ByteBuffer()
            event.reserveCapacity(length)
            event.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { output in
                bytes.withUnsafeReadableBytes { payload in
                    ServerSentEvent.encodeBase64Event(event: JobEventContract.Name.chunk.rawValue, id: id, payload: payload, into: output)
                }
            }
            try await writer.write(event)
            cursor.lastChunk = chunk.idx
        }
    }

    /// Writes one event of the contract, its payload encoded with Codable.
    func send(_ name: JobEventContract.Name, _ payload: some Encodable, to writer: inout any ResponseBodyWriter) async throws {
        try await writer.write(ByteBuffer(bytes: JobEventContract.encode(name, payload)))
    }
}
