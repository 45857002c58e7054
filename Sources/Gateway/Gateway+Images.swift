import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOFileSystem
import RelayProtocol

extension Gateway {
    /// How long a transfer holds an image against other instances at most; one instance's own
    /// transfers hold it in memory for as long as they run.
    static let transferClaimSeconds: Double = 120

    /// `GET` / `HEAD /v1/images/{key}`: the image once.
    ///
    /// The key is consumed only once the client's TCP has acknowledged the last byte; a transfer that
    /// breaks leaves it retrievable (resumable with `Range`); `HEAD` never consumes; while one transfer
    /// runs, other GETs get 409.
    func image(_ request: Request, context: GatewayRequestContext, head: Bool) async throws -> Response {
        let key = try context.parameters.require("key")
        guard RandomToken.isWellFormed(key), let job = try await lifecycle.store.job(imageKey: key) else {
            throw GatewayError(.notFound, "image_not_found", "no image with this key")
        }
        switch job.jobState {
        case .queued, .running:
            throw GatewayError(.conflict, "image_not_ready", "the image is not ready yet (job is \(job.jobState.rawValue))", headers: [.retryAfter: "1"])
        case .done:
            throw GatewayError(.gone, "image_consumed", "this image was already retrieved")
        case .expired:
            throw GatewayError(.gone, "image_expired", "this image expired before it was retrieved")
        case .failed, .cancelled:
            throw GatewayError(.gone, "image_unavailable", "the job \(job.jobState.rawValue); there is no image")
        case .ready:
            break
        }
        guard let size = job.totalBytes else { throw GatewayError(.internalServerError, "internal_error", "ready job without a size") }
        let etag = "\"\(job.sha256 ?? "")\""
        var headers: HTTPFields = [
            .contentType: job.contentType ?? "application/octet-stream",
            .eTag: etag,
            .acceptRanges: "bytes",
            .cacheControl: "no-store",
        ]
        var range: Range<Int64> = 0..<size
        var status = HTTPResponse.Status.ok
        // A Range this server does not take (several ranges, another unit, malformed) is ignored, as RFC 9110
        // §14.2 allows: the whole image is served. Only a single byte range it cannot satisfy is a 416.
        if let rangeHeader = request.headers[.range], let byteRange = ByteRange(header: rangeHeader),
            request.headers[.ifRange].map({ $0 == etag }) ?? true
        {
            guard let requested = byteRange.resolve(size: size) else {
                throw GatewayError(.rangeNotSatisfiable, "range_not_satisfiable", "the image has \(size) bytes", headers: [.contentRange: "bytes */\(size)"])
            }
            range = requested
            status = .partialContent
            headers[.contentRange] = "bytes \(range.lowerBound)-\(range.upperBound - 1)/\(size)"
        }
        headers[.contentLength] = String(range.count)
        if head {
            return Response(status: status, headers: headers)
        }
        guard let claim = lifecycle.claimImage(key: key, jobId: job.id) else {
            throw GatewayError(.conflict, "image_in_flight", "another transfer of this image is in progress", headers: [.retryAfter: "1"])
        }
        // The state is read again now that the claim is held: the job may have been consumed by a transfer
        // that ended between the lookup above and the claim. A ledger that cannot be read is a 500, not a 410.
        guard let current = try await lifecycle.store.job(imageKey: key), current.jobState == .ready else {
            claim.release()
            throw GatewayError(.gone, "image_consumed", "this image was already retrieved")
        }
        // Instances sharing a store: one transfer among them all (a killed instance's claim runs out).
        let until = Date().timeIntervalSince1970 + Self.transferClaimSeconds
        guard try await lifecycle.store.claimTransfer(jobId: current.id, until: until) else {
            claim.release()
            throw GatewayError(.conflict, "image_in_flight", "another transfer of this image is in progress", headers: [.retryAfter: "1"])
        }
        let storage = lifecycle.spool
        let consumesKey = range.upperBound == size
        let bytes = range
        // Looked up now: once the connection closes, its handlers are gone.
        let connection = await ConnectionState.of(context.channel)
        // The claim travels with the body: released at the end of it, or by its deinit when the server
        // drops the response unsent (the client reset before the head).
        let body = ResponseBody(contentLength: Int(range.count)) { [self] writer in
            defer { claim.release() }
            do {
                try await storage.sendImage(of: current, range: bytes, on: context.channel, to: &writer)
                try await writer.finish(nil)
            } catch {
                connection?.markReset()
                logger.notice("job \(job.id): image transfer broke (\(error)); key stays retrievable")
                throw error
            }
            guard consumesKey else { return }
            // Consumed only once the client's TCP has every byte, not when the kernel took them.
            guard await Delivery.waitUntilAcknowledged(context.channel, connection: connection, timeout: configuration.connections.bodyReadTimeout) else {
                logger.notice("job \(job.id): the client did not take the image's last bytes; key stays retrievable")
                context.channel.close(promise: nil)
                return
            }
            do {
                _ = try await lifecycle.consume(job)
            } catch {
                // Not recorded: the key stays retrievable (the safe side), and the client has its bytes.
                logger.error("job \(job.id): could not record the retrieval: \(error)")
            }
        }
        return Response(status: status, headers: headers, body: body)
    }
}

/// A single `Range: bytes=...` request (RFC 9110 §14.1.2); multiple ranges are not served.
struct ByteRange: Equatable {
    var first: Int64?
    var last: Int64?

    init?(header: String) {
        guard header.hasPrefix("bytes=") else { return nil }
        let spec = header.dropFirst(6).trimmingCharacters(in: .whitespaces)
        guard !spec.contains(","), let dash = spec.firstIndex(of: "-") else { return nil }
        let start = spec[..<dash]
        let end = spec[spec.index(after: dash)...]
        first = start.isEmpty ? nil : Int64(start)
        last = end.isEmpty ? nil : Int64(end)
        if !start.isEmpty && first == nil { return nil }
        if !end.isEmpty && last == nil { return nil }
        if first == nil && last == nil { return nil }
    }

    /// The byte range within a file of `size` bytes, or nil when unsatisfiable.
    func resolve(size: Int64) -> Range<Int64>? {
        switch (first, last) {
        case (let first?, let last?):
            guard first <= last, first < size else { return nil }
            return first..<min(last + 1, size)
        case (let first?, nil):
            guard first < size else { return nil }
            return first..<size
        case (nil, let suffix?):
            guard suffix > 0, size > 0 else { return nil }
            return max(0, size - suffix)..<size
        default:
            return nil
        }
    }
}
