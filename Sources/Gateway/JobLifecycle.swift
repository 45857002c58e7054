import Foundation
import Logging
import NIOCore
import RelayProtocol
import Synchronization

/// The one owner of every job's life.
///
/// Each transition — create, start an attempt, store a chunk, complete, retry, fail, cancel, expire,
/// consume, forget — is one call here that writes the ledger, does the file work and signals the job's
/// subscribers together; route handlers, the dispatcher and the janitor only call it. It also hands out
/// what a request holds — an image claim, an event subscription, a chunk slot, an attempt's
/// cancellation — in forms that are released however the request ends.
final class JobLifecycle: Sendable {
    /// The ledger (reads are free for anyone; writes happen only here).
    let store: any JobStore
    /// Spool and image files.
    let spool: any ChunkStorage
    /// Event-stream subscribers and their change signals.
    let feed: JobFeed
    /// Cancellation of running attempts, recorded so a late waiter still sees it.
    let cancellations: JobCancellation
    private let admission: AdmissionQueue
    private let logger: Logger
    /// Image keys under transfer, and whether the image was given up meanwhile (its file goes at release).
    private let claims = Mutex<[String: Bool]>([:])
    /// Chunks being written (`job/attempt/index`); a concurrent write of the same chunk gets 503.
    private let chunksInFlight = Mutex<Set<String>>([])
    /// The whole-image digest of each running job's current attempt, hashed as its chunks arrive.
    private let digests = Mutex<[String: AttemptDigest]>([:])

    /// Where released transfer claims go to be ended in a shared store; nil alone.
    private let transferReleases: AsyncStream<String>.Continuation?

    init(
        store: any JobStore, spool: any ChunkStorage, feed: JobFeed, admission: AdmissionQueue,
        cancellations: JobCancellation = JobCancellation(), transferReleases: AsyncStream<String>.Continuation? = nil, logger: Logger
    ) {
        self.cancellations = cancellations
        self.transferReleases = transferReleases
        self.store = store
        self.spool = spool
        self.feed = feed
        self.admission = admission
        self.logger = logger
    }

    // MARK: Transitions

    /// A new job at the back of the queue; the dispatcher and every waiting client hear of it.
    func create(_ request: CreateJobRequest, chunkSize: Int) async throws -> JobRecord {
        let key = request.delivery == .retrieve ? RandomToken.make() : nil
        let job = try await store.insert(id: RandomToken.make(), request: request, chunkSize: chunkSize, imageKey: key)
        admission.wake()
        feed.notifyQueue()
        return job
    }

    /// The first queued job (passing over `busyFunctions`) as a new running attempt; the queue hears it moved.
    func startNextAttempt(excluding busyFunctions: Set<String>, limit: Int) async throws -> JobRecord? {
        guard let job = try await store.startNextAttempt(excluding: busyFunctions, limit: limit) else { return nil }
        beginDigest(of: job)
        feed.notify(job.id)  // its subscribers hear `started`
        feed.notifyQueue()  // the others their new place
        return job
    }

    /// Writes a verified chunk to its attempt's spool at `index × cap` and records it if the attempt is
    /// still current; a late chunk of an abandoned attempt takes its spool file with it.
    func storeChunk(_ body: ByteBuffer, digest: ContentDigest, index: Int, of job: JobRecord) async throws -> ChunkInsert {
        try await spool.write(body, jobId: job.id, attempt: job.attempt, index: index, chunkSize: job.chunkSize)
        let record = ChunkRecord(jobId: job.id, attempt: job.attempt, idx: index, size: body.readableBytes, sha256: digest.hex)
        let outcome = try await store.insertChunk(record, chunkSize: job.chunkSize)
        switch outcome {
        case .stored:
            currentDigest(of: job)?.stored(body, index: index)
            feed.notify(job.id)
        case .attemptOver: await spool.removeSpool(jobId: job.id, attempt: job.attempt)
        case .duplicate, .conflict, .shortChunkNotLast: break
        }
        return outcome
    }

    /// Verifies count, size and whole-image digest of an attempt, seals its spool and makes the image
    /// `ready` (retrieve: moved to the image folder until `keepFor`) or `done` (stream: the spool stays
    /// for resumes until `keepFor`). Throws the client's error when something does not match.
    func complete(_ job: JobRecord, manifest: CompleteRequest, declared: ContentDigest, keepFor: Duration) async throws {
        let summary = try await store.chunkSummary(jobId: job.id, attempt: job.attempt, chunkSize: job.chunkSize)
        guard summary.count == manifest.chunks, summary.maxIndex == manifest.chunks - 1 else {
            throw GatewayError(.unprocessableContent, "incomplete", "\(manifest.chunks) chunks announced, \(summary.count) stored (indices 0...\(max(summary.maxIndex, 0)))")
        }
        guard summary.bytes == manifest.bytes, summary.shortBeforeLast == 0 else {
            throw GatewayError(.unprocessableContent, "size_mismatch", "\(manifest.bytes) bytes announced, \(summary.bytes) stored")
        }
        let progress = currentDigest(of: job)?.progress()
        let (actual, readBack) = try await spool.seal(
            jobId: job.id, attempt: job.attempt, length: manifest.bytes, chunkSize: job.chunkSize, progress: progress)
        if readBack > 0 { logger.debug("job \(job.id): \(readBack) bytes read back to finish the image digest") }
        guard actual == declared else {
            throw GatewayError(.unprocessableContent, "digest_mismatch", "the assembled image's SHA-256 is \(actual.hex), not \(declared.hex)")
        }
        if job.deliveryMode == .retrieve {
            try await spool.promote(jobId: job.id, attempt: job.attempt)
        }
        let expiresAt = Date().timeIntervalSince1970 + keepFor.inSeconds
        guard try await store.markComplete(jobId: job.id, attempt: job.attempt, manifest: manifest, expiresAt: expiresAt) else {
            if job.deliveryMode == .retrieve { await spool.removeImage(jobId: job.id) }
            throw GatewayError(.conflict, "job_not_running", "job \(job.id) ended while completing")
        }
        dropDigest(of: job.id)
        feed.notify(job.id)
        logger.info("job \(job.id): complete, \(manifest.bytes) bytes in \(manifest.chunks) chunks, sha256 \(manifest.sha256)")
    }

    /// Rolls a failed attempt back before the runtime retries: a new attempt with a new token (a late
    /// chunk of the old one gets 401), the old attempt's chunks and spool gone, clients told `retrying`.
    /// Nil when the job is no longer running (cancelled meanwhile, say).
    func retry(jobId: String, after failure: JobError) async throws -> JobRecord? {
        guard let current = try await store.job(id: jobId), current.jobState == .running,
            let next = try await store.startRetry(jobId: jobId, after: current.attempt, failure: failure)
        else { return nil }
        await spool.removeSpool(jobId: jobId, attempt: current.attempt)
        beginDigest(of: next)
        logger.notice("job \(jobId): attempt \(current.attempt) failed (\(failure.code)); retrying as attempt \(next.attempt)")
        feed.notify(jobId)
        return next
    }

    /// Ends a running job as failed (one the function completed before failing keeps its image).
    @discardableResult
    func fail(jobId: String, with failure: JobError) async throws -> Bool {
        guard try await store.finish(jobId: jobId, from: [.running], to: .failed, error: failure) else { return false }
        logger.warning("job \(jobId) failed: \(failure.code): \(failure.message)")
        await spool.removeSpool(jobId: jobId)
        dropDigest(of: jobId)
        feed.notify(jobId)
        return true
    }

    /// Cancels a job still in one of `states`: records the cancellation (its invocation stops, even one
    /// that is only about to start), drops its files (an image under transfer goes when the transfer
    /// ends), and frees its place (the jobs behind it hear they moved). False when it had moved on.
    func cancel(_ job: JobRecord, from states: Set<JobState>, error: JobError? = nil) async throws -> Bool {
        guard try await store.finish(jobId: job.id, from: states, to: .cancelled, error: error) else { return false }
        cancellations.cancel(job.id)
        await spool.removeSpool(jobId: job.id)
        dropDigest(of: job.id)
        if job.jobState == .ready { await giveUpImage(of: job) }
        feed.forget(job.id)
        admission.wake()
        feed.notify(job.id)  // its own subscribers hear `failed`
        feed.notifyQueue()  // the others their new place
        return true
    }

    /// Expires a ready image past its TTL, unless a transfer holds it (that transfer decides).
    func expireImage(_ job: JobRecord) async throws -> Bool {
        guard let key = job.imageKey, claims.withLock({ $0[key] == nil }) else { return false }
        guard try await store.finish(jobId: job.id, from: [.ready], to: .expired) else { return false }
        // A transfer may have claimed the key since the look above: then its release deletes the file.
        await giveUpImage(of: job)
        feed.notify(job.id)
        logger.info("job \(job.id): image expired unclaimed")
        return true
    }

    /// Deletes a finished stream's spool once its resume grace is over (later resumes get 410).
    func expireStream(_ job: JobRecord) async throws {
        await spool.removeSpool(jobId: job.id)
        try await store.clearExpiry(jobId: job.id)
        feed.forget(job.id)
    }

    /// Records that the one retrieval of a ready image happened (durable before the file goes: a crash
    /// between the two leaves a consumed key and an orphan file, never a second retrieval).
    func consume(_ job: JobRecord) async throws -> Bool {
        guard try await store.finish(jobId: job.id, from: [.ready], to: .done) else { return false }
        await spool.removeImage(jobId: job.id)
        feed.notify(job.id)
        logger.info("job \(job.id): image retrieved; key consumed")
        return true
    }

    /// Puts jobs that were running back at the front of the queue, in their old order (at start after a
    /// crash, and at shutdown for what did not finish in the grace; with a shared store, only this
    /// instance's); returns how many.
    func requeueRunning() async throws -> Int {
        let ids = try await store.requeueRunningJobs()
        returnedToQueue(ids)
        return ids.count
    }

    /// Keeps this instance's running jobs leased, and takes back those of an instance that stopped
    /// renewing (killed): they go to the front of the queue for a new attempt, as after a crash.
    func tendLeases() async throws -> Int {
        try await store.renewLeases()
        let ids = try await store.requeueExpiredLeases()
        returnedToQueue(ids)
        return ids.count
    }

    /// Running jobs went back to the front of the queue: their attempts' digests go, their clients and
    /// the queue hear it, and the dispatcher looks again.
    private func returnedToQueue(_ ids: [String]) {
        guard !ids.isEmpty else { return }
        for id in ids {
            dropDigest(of: id)
            feed.notify(id)
        }
        admission.wake()
        feed.notifyQueue()
    }

    /// Deletes the rows of jobs finished before `cutoff` (their chunk rows go with them); a key then
    /// answers 404 rather than 410. Returns how many went.
    func forgetFinished(before cutoff: Double) async throws -> Int {
        let ids = try await store.deleteFinished(before: cutoff)
        for id in ids { feed.forget(id) }
        return ids.count
    }

    /// The image of a job that is no longer `ready` goes: now, or when the transfer holding its key ends.
    private func giveUpImage(of job: JobRecord) async {
        guard let key = job.imageKey else { return }
        let claimed = claims.withLock { claims -> Bool in
            guard claims[key] != nil else { return false }
            claims[key] = true
            return true
        }
        if !claimed { await spool.removeImage(jobId: job.id) }
    }

    /// Starts the running digest of a new attempt (replacing the last attempt's). Made only here, when
    /// the attempt starts, never by a chunk: a chunk that lands as its attempt ends finds nothing to
    /// feed rather than leaving behind a digest (and the chunks it holds) that nothing would drop.
    private func beginDigest(of job: JobRecord) {
        // Chunks that run ahead of a gap wait in memory up to two caps (the memory budget is 4 × cap).
        let digest = AttemptDigest(attempt: job.attempt, holdLimit: 2 * job.chunkSize)
        digests.withLock { $0[job.id] = digest }
    }

    /// The running digest of `job`'s attempt, if that attempt is still the one being hashed.
    private func currentDigest(of job: JobRecord) -> AttemptDigest? {
        digests.withLock { $0[job.id] }.flatMap { $0.attempt == job.attempt ? $0 : nil }
    }

    private func dropDigest(of jobId: String) {
        _ = digests.withLock { $0.removeValue(forKey: jobId) }
    }

    // MARK: What requests hold

    /// Claims an image key for one transfer; nil when another transfer holds it (that GET gets 409).
    ///
    /// Taken before the response head (the 409 must be decided then) and released by `release()` or,
    /// when the server drops a response whose body never ran (the client reset before the head), by the
    /// claim's `deinit`: no way of ending a request leaves the key wedged.
    func claimImage(key: String, jobId: String) -> ImageClaim? {
        let taken = claims.withLock { claims -> Bool in
            guard claims[key] == nil else { return false }
            claims[key] = false
            return true
        }
        return taken ? ImageClaim(key: key, jobId: jobId, lifecycle: self) : nil
    }

    /// Ends a claim; an image given up during the transfer (cancelled) loses its file now.
    func releaseClaim(key: String, jobId: String) {
        let givenUp = claims.withLock { $0.removeValue(forKey: key) } ?? false
        if givenUp { spool.removeImageNow(jobId: jobId) }
        // Ended in the shared store by the bridge (this may run in a `deinit`, which cannot wait for a query).
        transferReleases?.yield(jobId)
    }

    /// Runs `body` with a subscription to `jobId`'s change signals, unsubscribed when it returns or throws.
    func withSubscription<T>(to jobId: String, _ body: (JobFeed.Subscription) async throws -> T) async throws -> T {
        let subscription = feed.subscribe(jobId)
        defer { feed.unsubscribe(subscription) }
        return try await body(subscription)
    }

    /// Runs `body` holding the slot of one chunk of one attempt; nil at once when another request holds it.
    func withChunkSlot<T>(job: JobRecord, index: Int, _ body: () async throws -> T) async throws -> T? {
        let slot = "\(job.id)/\(job.attempt)/\(index)"
        guard chunksInFlight.withLock({ $0.insert(slot).inserted }) else { return nil }
        defer { _ = chunksInFlight.withLock { $0.remove(slot) } }
        return try await body()
    }

    /// Sizes of what requests hold, for `/metrics`.
    var gauges: (claims: Int, chunkSlots: Int, cancellationScopes: Int) {
        (claims.withLock { $0.count }, chunksInFlight.withLock { $0.count }, cancellations.count)
    }
}
