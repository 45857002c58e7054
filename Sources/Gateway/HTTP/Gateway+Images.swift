import AsyncAlgorithms
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOFileSystem
import RelayProtocol

extension Gateway {
    /// `GET` / `HEAD /v1/images/{key}`: the image once.
    ///
    /// The key is consumed once the client's TCP has acknowledged every byte of the image, over one
    /// transfer or several (ranged, or resumed after a break: each credits the bytes its client
    /// acknowledged); `HEAD` never consumes; while one transfer runs, other GETs get 409 on any instance.
    func image(_ request: Request, context: GatewayRequestContext, head: Bool) async throws -> Response {
        let key = try context.parameters.require("key")
        guard RandomToken.isWellFormed(key), let job = try await lifecycle.store.job(imageKey: key) else {
            throw GatewayError(.notFound, .imageNotFound, "no image with this key")
        }
        // Whether the image can be served is the state machine's word; a HEAD is not held up by a transfer.
        let facts = lifecycle.facts(of: job, now: Date().timeIntervalSince1970, countingLocalTransfers: false)
        if case .refused(let refusal, _) = JobStateMachine.decide(facts, .transferClaimed), refusal != .transferInProgress {
            throw JobLifecycle.Refused(refusal)
        }
        guard let size = job.totalBytes else { throw GatewayError(.internalServerError, .internalError, "ready job without a size") }
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
                throw GatewayError(.rangeNotSatisfiable, .rangeNotSatisfiable, "the image has \(size) bytes", headers: [.contentRange: "bytes */\(size)"])
            }
            range = requested
            status = .partialContent
            headers[.contentRange] = "bytes \(range.lowerBound)-\(range.upperBound - 1)/\(size)"
        }
        headers[.contentLength] = String(range.count)
        if head {
            return Response(status: status, headers: headers)
        }
        // Held by this transfer here and in the ledger (the image may have been consumed or given up since
        // the look above: then the machine refuses). A ledger that cannot be read is a 500, not a 410.
        // Looked up now: once the connection closes, its handlers are gone.
        let connection = await ConnectionState.of(context.channel)
        let claim = try await lifecycle.claimImage(key: key, jobId: job.id, connection: connection)
        let storage = lifecycle.spool
        let bytes = range
        // The claim travels with the body: ended at the end of it, or by its deinit when the server drops
        // the response unsent (the client reset before the head).
        let body = ResponseBody(contentLength: Int(range.count)) { [self] writer in
            let meter = await BodyAcknowledgement.start(on: context.channel, connection: connection, length: Int64(bytes.count))
            do {
                try await withThrowingDiscardingTaskGroup { group in
                    group.addTask { await meter?.watch(every: .milliseconds(5)) }
                    // A transfer that runs long keeps its claim among instances.
                    if let renewal = self.lifecycle.transferRenewal {
                        group.addTask {
                            for await _ in AsyncTimerSequence(interval: renewal, clock: .continuous) {
                                await self.lifecycle.renewTransfer(jobId: job.id)
                            }
                        }
                    }
                    try await storage.sendImage(of: job, range: bytes, on: context.channel, to: &writer)
                    try await writer.finish(nil)
                    group.cancelAll()
                }
                claim.ending()
            } catch {
                claim.ending()
                connection?.markReset()
                await meter?.sample()
                let credited = meter?.acknowledgedPart(of: bytes)
                logger.notice("job \(job.id): image transfer broke (\(error)) after \(credited?.count ?? 0) acknowledged bytes; key stays retrievable")
                await claim.release(acknowledged: credited)
                throw error
            }
            // Delivered once the client's TCP has every byte, not when the kernel took them.
            guard await Delivery.waitUntilAcknowledged(context.channel, connection: connection, meter: meter, timeout: configuration.connections.bodyReadTimeout) else {
                await meter?.sample()
                logger.notice("job \(job.id): the client did not take the image's last bytes; key stays retrievable")
                await claim.release(acknowledged: meter?.acknowledgedPart(of: bytes))
                context.channel.close(promise: nil)
                return
            }
            await claim.release(acknowledged: bytes)
        }
        return Response(status: status, headers: headers, body: body)
    }
}
