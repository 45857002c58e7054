import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import RelayProtocol

extension Gateway {
    static let contentDigest = HTTPField.Name("Content-Digest")!

    /// Checks the attempt's bearer token in constant time (whether the job still takes uploads is the
    /// state machine's to say).
    func authorizedRunningJob(_ request: Request, context: GatewayRequestContext) async throws -> JobRecord {
        let job = try await existingJob(context)
        let header = request.headers[.authorization] ?? ""
        let presented = header.hasPrefix("Bearer ") ? String(header.dropFirst(7)) : ""
        // A finished job has no token: every upload to it is unauthorised rather than a conflict,
        // so a late chunk from an abandoned attempt learns nothing about the job.
        guard let token = job.uploadToken, Self.constantTimeEquals(presented, token) else {
            throw GatewayError(.unauthorized, .invalidToken, "missing or wrong upload token for job \(job.id)", headers: [.wwwAuthenticate: "Bearer"])
        }
        return job
    }

    /// `PUT /v1/jobs/{id}/chunks/{index}`.
    func putChunk(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let job = try await authorizedRunningJob(request, context: context)
        let indexText = try context.parameters.require("index")
        let head: ChunkUploadHead
        do {
            head = try ChunkUploadHead(
                indexText: indexText, contentDigest: request.headers[Self.contentDigest],
                contentLength: request.headers[.contentLength], chunkSize: job.chunkSize
            )
        } catch {
            throw GatewayError(error)
        }
        let (index, declared, declaredLength) = (head.index, head.digest, head.declaredLength)
        // A retry of a stored chunk, or a conflicting one, is answered without reading its body.
        if let existing = try await lifecycle.storedChunk(of: job, index: index, digest: declared, declaredLength: declaredLength) {
            return try Self.json(ChunkAccepted(index: index, bytes: existing.size, sha256: existing.sha256, stored: false))
        }
        // Short of space: refused before a byte of the body is read (and the attempt, should it fail, failed of it).
        let room = Int64(declaredLength ?? job.chunkSize)
        return try await lifecycle.storage.withUploadRoom(jobId: job.id, attempt: job.attempt, bytes: room) {
            try await storeChunk(request, job: job, index: index, declared: declared, declaredLength: declaredLength)
        }
    }

    /// Reads, verifies and offers one chunk's body (`putChunk`, once it has room).
    private func storeChunk(_ request: Request, job: JobRecord, index: Int, declared: ContentDigest, declaredLength: Int?) async throws -> Response {
        // At most one chunk cap per upload is held in memory; a body that grows past it is refused as soon
        // as it does (a chunked body has no Content-Length to check up front).
        // Sized once from Content-Length: growing by doubling would allocate up to twice the cap.
        var body = ByteBuffer()
        body.reserveCapacity(min(declaredLength ?? job.chunkSize, job.chunkSize))
        var hasher = SHA256()
        for try await part in request.body {
            guard body.readableBytes + part.readableBytes <= job.chunkSize else {
                throw GatewayError(.contentTooLarge, .chunkTooLarge, "a chunk may be at most \(job.chunkSize) bytes")
            }
            part.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
            body.writeImmutableBuffer(part)
        }
        let actual = ContentDigest(hasher.finalize())
        guard actual == declared else {
            throw GatewayError(.unprocessableContent, .digestMismatch, "chunk \(index) does not match its Content-Digest; nothing was stored")
        }
        // The ledger gives the index to the first digest offered before any byte is written: a conflicting
        // body never reaches the bytes the image is served from.
        let stored = try await lifecycle.offerChunk(body, digest: actual, index: index, of: job)
        let accepted = ChunkAccepted(index: index, bytes: body.readableBytes, sha256: actual.hex, stored: stored)
        return try Self.json(accepted, status: stored ? .created : .ok)
    }

    /// `POST /v1/jobs/{id}/complete`: verifies count, size and whole-image SHA-256, then makes the image ready.
    func complete(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let job = try await authorizedRunningJob(request, context: context)
        let manifest = try await Self.decodeJSON(CompleteRequest.self, from: request)
        let declared: ContentDigest
        do {
            declared = try manifest.validated()
        } catch {
            throw GatewayError(error)
        }
        // Retrieve mode hands out one file; stream mode keeps serving chunks from the spool for resumes.
        let keepFor = job.delivery == .retrieve ? configuration.imageTTL : configuration.streamGrace
        try await lifecycle.complete(job, manifest: manifest, declared: declared, keepFor: keepFor)
        return try Self.json(try await status(of: try await existingJob(context)))
    }


    /// Compares tokens without leaking where they differ through timing.
    static func constantTimeEquals(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        var difference = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<max(x.count, y.count) {
            difference |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)
        }
        return difference == 0
    }
}
