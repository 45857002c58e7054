import Foundation
import Logging
import NIOCore
import RelayProtocol
import Synchronization

/// Carries out a job's life: each call reports one event to `JobStateMachine` under the ledger's lock
/// on the job's row, writes what the machine decided in that transaction, and then does the file work
/// and signals it asked for. Route handlers, the dispatcher, the janitor and the PostgreSQL bridge only
/// call it. It also hands out what a request holds — an image claim, an event subscription, an
/// attempt's cancellation — in forms that are released however the request ends.
final class JobLifecycle: Sendable {
    typealias Machine = JobStateMachine

    /// The ledger (reads are free for anyone; writes happen only here).
    let store: any JobLedger
    /// Chunk and image bytes.
    let spool: any ChunkStorage
    /// Event-stream subscribers and their change signals.
    let feed: JobFeed
    /// What this instance saw happen to each recent job, for the inspector.
    let activity = JobActivity()
    /// Cancellation of running attempts, recorded so a late waiter still sees it.
    let cancellations: JobCancellation
    /// Free space and the store's refusals: what is refused while storage is short.
    let storage: StorageGuard
    /// With several instances on one store: leases, claims' renewal, presence; nil alone.
    let coordination: (any ClusterCoordination)?
    private let admission: AdmissionQueue
    /// The times the machine's facts are measured against.
    private let policy: Policy
    private let logger: Logger
    /// Image keys under transfer here, and whether the image was given up meanwhile (it goes at release).
    private let claims = Mutex<[String: LocalClaim]>([:])

    /// A transfer running here: whether its image was given up meanwhile (it goes at release), and
    /// whether the transfer is over but not yet recorded (its body was all sent, or its connection broke).
    private struct LocalClaim {
        var givenUp = false
        var ending = false
        let connection: ConnectionState?

        var isEnding: Bool { ending || connection?.wasReset == true }
    }
    /// Outcomes the ledger could not take when they happened, by job, for the janitor to record.
    private let unrecorded = Mutex<[String: [Unrecorded]]>([:])
    /// Chunk uploads writing their bytes now, for `/metrics`.
    private let chunkWrites = Atomic<Int>(0)
    /// The whole-image digest of each running job's current attempt, hashed as its chunks arrive.
    private let digests = Mutex<[String: AttemptDigest]>([:])
    /// Several instances: transfers dropped without their body running, for the bridge to end in the
    /// ledger (a `deinit` cannot wait for a query); nil alone.
    private let droppedTransfers: AsyncStream<String>.Continuation?
    /// When this instance last renewed its leases (several instances).
    private let lastRenewal = Mutex<ContinuousClock.Instant?>(nil)
    /// When this instance last renewed its leases; nil before the janitor's first pass.
    var lastLeaseRenewal: ContinuousClock.Instant? { lastRenewal.withLock { $0 } }

    init(
        store: any JobLedger, spool: any ChunkStorage, feed: JobFeed, admission: AdmissionQueue, storage: StorageGuard,
        cancellations: JobCancellation = JobCancellation(), coordination: (any ClusterCoordination)? = nil, droppedTransfers: AsyncStream<String>.Continuation? = nil, policy: Policy = Policy(),
        logger: Logger
    ) {
        self.droppedTransfers = droppedTransfers
        self.store = store
        self.spool = spool
        self.feed = feed
        self.admission = admission
        self.storage = storage
        self.cancellations = cancellations
        self.coordination = coordination
        self.policy = policy
        self.logger = logger
    }

    /// The times a job's facts are measured against (from the gateway's configuration).
    struct Policy: Sendable {
        /// How long a stream job may go without a reader.
        var clientGrace: Double = 30
        /// How long a finished job's row stays.
        var finishedRetention: Double = 86_400
        /// How recently another instance must have recorded a reader for a stream to count as read now.
        var presenceWindow: Double = 40
        /// The most jobs that run at once, among every instance sharing the store.
        var maxConcurrency = 4
    }

    /// What a transition needs besides the event: the values its writes record.
    struct Inputs: Sendable {
        var now = Date().timeIntervalSince1970
        var error: JobError?
        var manifest: CompleteRequest?
        var keepUntil: Double?
        var queueOrder: Int64?
        var chunk: ChunkRecord?
    }

    /// A transition as it went: the row before and after, and what the machine decided.
    struct Transition: Sendable {
        var before: JobRecord
        var after: JobRecord
        var decision: Machine.Decision
        /// The event (nil for a job's creation, which has none).
        var event: Machine.Event?
        /// Whether the ledger was written (a refusal, or a move that changes nothing, writes nothing).
        var wroteLedger = false

        var refusal: Machine.Refusal? {
            if case .refused(let refusal, _) = decision { return refusal }
            return nil
        }

        var actions: Machine.Actions {
            switch decision {
            case .moved(_, let actions): actions
            case .refused(_, let cleanup): cleanup
            }
        }
    }

    // MARK: Events

    /// A new job at the back of the queue; the dispatchers hear of it (the waiting clients' places do not change).
    func create(_ request: CreateJobRequest, chunkSize: Int) async throws -> JobRecord {
        try storage.admit("a new job")
        let params = String(decoding: try JSONEncoder().encode(request.params), as: UTF8.self)
        let job = try await noting { try await store.insert(
            JobRecord(
                id: RandomToken.make(), function: request.function, params: params, delivery: request.delivery, chunkSize: chunkSize,
                imageKey: request.delivery == .retrieve ? RandomToken.make() : nil, createdAt: Date().timeIntervalSince1970)) }
        storage.wrote()
        await perform(Machine.created.actions, on: Transition(before: job, after: job, decision: .moved(to: job.state, Machine.created.actions), event: nil))
        return job
    }

    /// The first queued job (passing over `busyFunctions`) as a new running attempt, unless the
    /// concurrency limit is reached; the queue hears it moved.
    /// While storage is short the queue waits: an attempt started then could only fail for lack of room
    /// (the janitor wakes the dispatcher once it is not).
    func startNextAttempt(excluding busyFunctions: Set<String>) async throws -> JobRecord? {
        guard storage.shortage == nil else { return nil }
        let inputs = Inputs()
        let transition = try await noting {
            try await store.updateNextQueued(excluding: busyFunctions) { [self] job, running in
                var facts = facts(of: job, now: inputs.now)
                facts.atConcurrencyLimit = running >= policy.maxConcurrency
                return decide(job, .attemptStarted, facts: facts, inputs: inputs)
            }
        }
        guard let transition, transition.refusal == nil else { return nil }
        if transition.wroteLedger { storage.wrote() }
        await perform(transition.actions, on: transition)
        return transition.after
    }

    /// Offers a verified chunk to the ledger, which gives its index to the first digest offered; only
    /// then are the bytes written where chunks are served from, and counted. Returns whether this
    /// request stored the chunk (false: those bytes were there already); throws the refusal otherwise.
    func offerChunk(_ body: ByteBuffer, digest: ContentDigest, index: Int, of job: JobRecord) async throws -> Bool {
        let chunk = ChunkRecord(jobId: job.id, attempt: job.attempt, idx: index, size: body.readableBytes, sha256: digest.hex, written: false)
        let probe = ChunkProbe(attempt: job.attempt, index: index, chunkSize: job.chunkSize)
        var inputs = Inputs()
        inputs.chunk = chunk
        let offered = try await transition(job.id, probe: probe, inputs: inputs) { facts, _ in .chunkOffered(Self.offer(chunk, job.chunkSize, facts)) }
        if let refusal = offered.refusal {
            if refusal == .alreadyStored { return false }
            throw Refused(refusal)
        }
        _ = chunkWrites.add(1, ordering: .relaxed)
        defer { _ = chunkWrites.subtract(1, ordering: .relaxed) }
        do {
            try await spool.write(body, jobId: job.id, attempt: job.attempt, index: index, chunkSize: job.chunkSize)
        } catch {
            storage.noticed(error, jobId: job.id, attempt: job.attempt)
            throw error
        }
        var own = probe
        own.neighbours = false
        let written = try await transition(job.id, probe: own, inputs: inputs, body: body) { facts, _ in .chunkWritten(Self.offer(chunk, job.chunkSize, facts)) }
        if let refusal = written.refusal {
            if refusal == .alreadyStored { return false }
            throw Refused(refusal)
        }
        return true
    }

    /// Before an upload's body is read: the chunk already stored at its index when the machine would
    /// take the upload for a repeat of it; throws when it would refuse the upload whatever its body holds.
    func storedChunk(of job: JobRecord, index: Int, digest: ContentDigest, declaredLength: Int?) async throws -> ChunkRecord? {
        guard let existing = try await store.chunk(jobId: job.id, attempt: job.attempt, index: index) else { return nil }
        let chunk = ChunkRecord(jobId: job.id, attempt: job.attempt, idx: index, size: declaredLength ?? existing.size, sha256: digest.hex)
        let facts = ChunkFacts(existing: existing, laterChunk: false, shortChunkBefore: false)
        switch Machine.decide(self.facts(of: job, now: Date().timeIntervalSince1970), .chunkOffered(Self.offer(chunk, job.chunkSize, facts))) {
        case .refused(.alreadyStored, _): return existing
        case .refused(let refusal, _): throw Refused(refusal)
        case .moved: return nil
        }
    }

    private static func offer(_ chunk: ChunkRecord, _ chunkSize: Int, _ facts: ChunkFacts?) -> Machine.ChunkOffer {
        Machine.ChunkOffer(
            attempt: chunk.attempt, index: chunk.idx, sha256: chunk.sha256, size: chunk.size, chunkSize: chunkSize,
            existing: facts?.existing.map { ($0.sha256, $0.written) }, laterChunk: facts?.laterChunk ?? false,
            shortChunkBefore: facts?.shortChunkBefore ?? false)
    }

    /// Verifies count, size and whole-image digest of an attempt against its written chunks, seals its
    /// bytes and makes the image `ready` (retrieve: kept until `keepFor`) or `done` (stream: kept for
    /// resumes until `keepFor`). Throws the client's error when something does not match.
    func complete(_ job: JobRecord, manifest: CompleteRequest, declared: ContentDigest, keepFor: Duration) async throws {
        let summary = try await store.chunkSummary(jobId: job.id, attempt: job.attempt, chunkSize: job.chunkSize)
        guard summary.unwritten == 0 else {
            throw GatewayError(
                .serviceUnavailable, .chunkInFlight, "\(summary.unwritten) chunk(s) of this attempt are still being written",
                headers: [.retryAfter: "1"])
        }
        guard summary.count == manifest.chunks, summary.maxIndex == manifest.chunks - 1 else {
            throw GatewayError(.unprocessableContent, .incomplete, "\(manifest.chunks) chunks announced, \(summary.count) stored (indices 0...\(max(summary.maxIndex, 0)))")
        }
        guard summary.bytes == manifest.bytes, summary.shortBeforeLast == 0 else {
            throw GatewayError(.unprocessableContent, .sizeMismatch, "\(manifest.bytes) bytes announced, \(summary.bytes) stored")
        }
        let progress = currentDigest(of: job)?.progress()
        let (actual, readBack) = try await noting {
            try await spool.seal(jobId: job.id, attempt: job.attempt, length: manifest.bytes, chunkSize: job.chunkSize, progress: progress)
        }
        if readBack > 0 { logger.debug("job \(job.id): \(readBack) bytes read back to finish the image digest") }
        guard actual == declared else {
            throw GatewayError(.unprocessableContent, .digestMismatch, "the assembled image's SHA-256 is \(actual.hex), not \(declared.hex)")
        }
        if job.delivery == .retrieve {
            try await noting { try await spool.promote(jobId: job.id, attempt: job.attempt) }
        }
        var inputs = Inputs()
        inputs.manifest = manifest
        inputs.keepUntil = inputs.now + keepFor.inSeconds
        let completed: Transition
        do {
            completed = try await transition(job.id, inputs: inputs) { _ in .completed(attempt: job.attempt) }
        } catch {
            // Not recorded (a full disk, a store refusing writes): the bytes go back where a retried
            // `complete` finds them; the ledger still says running.
            if job.delivery == .retrieve { await spool.demote(jobId: job.id, attempt: job.attempt) }
            throw error
        }
        if let refusal = completed.refusal {
            if job.delivery == .retrieve { await spool.removeImage(jobId: job.id) }
            throw Refused(refusal)
        }
        logger.info("job \(job.id): complete, \(manifest.bytes) bytes in \(manifest.chunks) chunks, sha256 \(manifest.sha256)")
    }

    /// Rolls a failed attempt back before the runtime retries: a new attempt with a new token (a late
    /// chunk of the old one gets 401), the old attempt's chunks gone, clients told `retrying`. Nil when
    /// the job is no longer running that attempt (cancelled meanwhile, say).
    func retry(jobId: String, attempt: Int, after failure: JobError) async throws -> JobRecord? {
        var inputs = Inputs()
        inputs.error = storageAware(failure, jobId: jobId, attempt: attempt)
        let retried = try await transition(jobId, inputs: inputs) { _ in .attemptFailed(attempt: attempt, retry: true) }
        guard retried.refusal == nil else { return nil }
        logger.notice("job \(jobId): attempt \(retried.before.attempt) failed (\(failure.code)); retrying as attempt \(retried.after.attempt)")
        return retried.after
    }

    /// Ends a running job's attempt `attempt` as failed for good (one the function completed before failing
    /// keeps its image); false when the machine refused (not running, another attempt, another instance's).
    @discardableResult
    func fail(jobId: String, attempt: Int, with failure: JobError) async throws -> Bool {
        var inputs = Inputs()
        let failure = storageAware(failure, jobId: jobId, attempt: attempt)
        inputs.error = failure
        let failed = try await transition(jobId, inputs: inputs) { _ in .attemptFailed(attempt: attempt, retry: false) }
        guard failed.refusal == nil else { return false }
        logger.warning("job \(jobId) failed: \(failure.code): \(failure.message)")
        return true
    }

    /// `fail`, or when the ledger cannot record it now (a full disk, a store refusing writes), kept for
    /// the janitor to record once it can: a job is never left running for want of one write.
    func settleFailure(jobId: String, attempt: Int, with failure: JobError) async {
        do {
            try await fail(jobId: jobId, attempt: attempt, with: failure)
        } catch {
            if StorageFailure.isCancellation(error) {
                // Shutting down, most often: not a fault. The janitor records it, or, when this instance stops
                // first, a janitor settles the job once its lease lapses, as for any instance that stopped.
                logger.notice("job \(jobId): recording its failure was cancelled; the janitor records it")
            } else {
                let reason = StorageFailure(error).map { "\($0 == .full ? "storage full" : "store unavailable")" } ?? "\(error)"
                logger.error("job \(jobId): could not record its failure (\(reason)); the janitor tries again")
            }
            unrecorded.withLock { $0[jobId, default: []].append(.failure(attempt: attempt, failure)) }
        }
    }

    /// What an attempt that failed after an upload of it was refused for space failed of: `storage_full`,
    /// whatever the function made of the refusal (the refusal is forgotten once the job leaves the attempt).
    private func storageAware(_ failure: JobError, jobId: String, attempt: Int) -> JobError {
        guard failure.code != "storage_full", storage.wasRefused(jobId: jobId, attempt: attempt) else { return failure }
        return JobError(code: "storage_full", message: "out of storage space for its chunks (the function reported \(failure.code): \(failure.message))")
    }

    /// Records what could not be recorded when it happened; returns how many still wait (the janitor's
    /// each pass). An outcome the machine now refuses (the job moved on meanwhile) is dropped.
    @discardableResult
    func recordUnrecorded() async -> Int {
        let pending = unrecorded.withLock { pending in
            defer { pending = [:] }
            return pending
        }
        for (jobId, outcomes) in pending {
            for (offset, outcome) in outcomes.enumerated() {
                do {
                    switch outcome {
                    case .failure(let attempt, let failure):
                        try await fail(jobId: jobId, attempt: attempt, with: failure)
                    case .transferEnd(let acknowledged):
                        _ = try await transition(jobId) { _ in .transferReleased(acknowledged: acknowledged) }
                    }
                } catch let error as GatewayError where error.code == .jobNotFound {
                    break  // forgotten meanwhile: nothing left to record
                } catch {
                    unrecorded.withLock { $0[jobId, default: []].append(contentsOf: outcomes[offset...]) }
                    break
                }
            }
        }
        return unrecordedCount
    }

    private var unrecordedCount: Int { unrecorded.withLock { $0.values.reduce(0) { $0 + $1.count } } }

    /// An outcome the ledger could not take when it happened.
    enum Unrecorded: Sendable {
        /// An attempt's failure.
        case failure(attempt: Int, JobError)
        /// The bytes a transfer delivered (they count toward consuming the key).
        case transferEnd(Range<Int64>)
    }

    /// Cancels a job: its invocation stops (even one only about to start), its bytes go (an image under
    /// transfer when the transfer ends), and the jobs behind it move up. Throws the refusal (finished).
    func cancel(jobId: String, error: JobError? = nil) async throws {
        var inputs = Inputs()
        inputs.error = error
        let cancelled = try await transition(jobId, inputs: inputs) { _ in .cancelled }
        if let refusal = cancelled.refusal { throw Refused(refusal) }
    }

    /// Cancels a stream job that no reader on any instance has been on for the client grace (its stream
    /// has no one to deliver to); false when the machine refused (watched, finished, not yet due).
    func abandon(jobId: String, now: Double = Date().timeIntervalSince1970) async throws -> Bool {
        var inputs = Inputs()
        inputs.now = now
        inputs.error = JobError(code: "client_gone", message: "no client watched this stream job for \(Int(policy.clientGrace)) s")
        return try await transition(jobId, inputs: inputs) { _ in .abandoned }.refusal == nil
    }

    /// Expires a ready image past its TTL (not while a transfer holds it), or drops a finished stream's
    /// chunks once its resume grace is over (not while a reader on any instance is on it). False when
    /// the machine refused.
    func expire(jobId: String, now: Double = Date().timeIntervalSince1970) async throws -> Bool {
        var inputs = Inputs()
        inputs.now = now
        let expired = try await transition(jobId, inputs: inputs) { _ in .expired }
        guard expired.refusal == nil else { return false }
        if expired.after.state == .expired { logger.info("job \(jobId): image expired unclaimed") }
        return true
    }

    /// Puts jobs whose instance stopped back at the front of the queue, in the order given (at start
    /// after a crash, at shutdown for what did not finish in the grace, and for a lease that ran out);
    /// returns how many went. A job another instance holds a live lease on stays.
    func returnToQueue(_ jobIds: [String], _ loss: Machine.Event.LeaseLoss) async throws -> Int {
        guard !jobIds.isEmpty else { return 0 }
        let front = try await store.frontOfQueue()
        var returned = 0
        for (offset, id) in jobIds.enumerated() {
            var inputs = Inputs()
            inputs.queueOrder = front - Int64(jobIds.count) + Int64(offset)
            if try await transition(id, inputs: inputs, { _ in .leaseLost(loss) }).refusal == nil { returned += 1 }
        }
        return returned
    }

    /// Every running job this instance may take back (alone: all of them) goes back to the front of the
    /// queue: at start after a crash, and at shutdown for what did not finish in the grace.
    func returnRunningToQueue() async throws -> Int {
        try await returnToQueue(try await store.jobs([JobFilter(states: [.running])]).map(\.id), .stopping)
    }

    /// Several instances: keeps this instance's running jobs leased, and takes back those of an instance
    /// that stopped renewing (killed): they go to the front of the queue for a new attempt, as after a crash.
    func tendLeases() async throws -> Int {
        guard let coordination else { return 0 }
        let now = Date().timeIntervalSince1970
        // A write every pass: the one that tells a store that refused writes takes them again.
        try await noting { try await coordination.renewLeases(now: now) }
        storage.wrote()
        let renewed = ContinuousClock.now
        let previous = lastRenewal.withLock { last in
            defer { last = renewed }
            return last
        }
        // A janitor held up past half a lease was likely held up with its neighbours (one loaded
        // machine stalls them all): it renews its own now and judges theirs at its next pass, once
        // they have had a chance to renew theirs, rather than taking over jobs that are alive.
        if let previous, renewed - previous > .seconds(coordination.leaseSeconds / 2) {
            logger.warning("this instance's leases went \(renewed - previous) without a renewal (lease \(coordination.leaseSeconds) s): the others' are looked at next pass")
            return 0
        }
        return try await returnToQueue(try await coordination.lapsedLeases(now: now), .lapsed)
    }

    /// Deletes the rows of jobs whose retention ran out by `now` (their chunk rows go with them); a key
    /// then answers 404 rather than 410. Returns how many went.
    func forgetFinished(now: Double) async throws -> Int {
        let cutoff = now - policy.finishedRetention
        let candidates = try await store.jobs([
            JobFilter(states: [.failed, .cancelled, .expired], finishedBefore: cutoff),
            JobFilter(states: [.done], delivery: .retrieve, finishedBefore: cutoff),
            JobFilter(states: [.done], delivery: .stream, noExpiry: true, readyBefore: cutoff),
        ])
        // Terminal rows do not change any more, so the machine's word on each needs no lock.
        let forgotten = candidates.filter {
            if case .moved(_, let actions) = Machine.decide(facts(of: $0, now: now), .forgotten) { return actions.contains(.deleteRow) }
            return false
        }
        try await store.delete(ids: forgotten.map(\.id))
        for job in forgotten { feed.forget(job.id) }
        return forgotten.count
    }

    // MARK: Transfers

    /// Claims an image for one transfer: here first (another transfer here gets 409 at once), then in
    /// the ledger (the image must be ready, and no other instance sending it). Throws the refusal.
    ///
    /// Taken before the response head (the 409 must be decided then) and released by `release(…)` or,
    /// when the server drops a response whose body never ran (the client reset before the head), by the
    /// claim's `deinit`: no way of ending a request leaves the key wedged.
    func claimImage(key: String, jobId: String, connection: ConnectionState?) async throws -> ImageClaim {
        // A transfer here that is over (its client has the last byte, or its connection broke and the
        // client is resuming at once) still holds the claim for the few milliseconds its end takes to
        // record: a GET that arrives then waits for it, up to a second, rather than being told 409 for
        // what is over. One that meets a transfer still running is told at once.
        let deadline = ContinuousClock.now + .seconds(1)
        while true {
            do {
                return try await claimImageNow(key: key, jobId: jobId, connection: connection)
            } catch let refused as Refused
                where refused.refusal == .transferInProgress && ContinuousClock.now < deadline && claims.withLock({ $0[key]?.isEnding == true })
            {
                try await Task.sleep(for: .milliseconds(10))
            }
        }
    }

    private func claimImageNow(key: String, jobId: String, connection: ConnectionState?) async throws -> ImageClaim {
        let taken = claims.withLock { claims -> Bool in
            guard claims[key] == nil else { return false }
            claims[key] = LocalClaim(connection: connection)
            return true
        }
        guard taken else { throw Refused(.transferInProgress) }
        var inputs = Inputs()
        inputs.keepUntil = inputs.now + (coordination?.leaseSeconds ?? 0) * 2
        do {
            let claimed = try await transition(jobId, inputs: inputs, countingLocalTransfers: false) { _ in .transferClaimed }
            if let refusal = claimed.refusal { throw Refused(refusal) }
        } catch {
            _ = claims.withLock { $0.removeValue(forKey: key) }
            throw error
        }
        return ImageClaim(key: key, jobId: jobId, lifecycle: self)
    }

    /// The transfer holding `key` here is over; only its recording is left.
    func transferEnding(key: String) {
        claims.withLock { $0[key]?.ending = true }
    }

    /// Ends a transfer whose client acknowledged `acknowledged` of the image: the key is consumed once
    /// its transfers together delivered every byte; an image given up meanwhile goes now.
    func endTransfer(key: String, jobId: String, acknowledged: Range<Int64>?) async {
        // Recorded before the claim here goes: a GET that takes it next sees the key consumed.
        await recordTransferEnd(jobId: jobId, acknowledged: acknowledged)
        _ = claims.withLock { $0.removeValue(forKey: key) }
    }

    /// The ledger's part of ending a transfer (the bridge's, for one dropped without its body running).
    func recordTransferEnd(jobId: String, acknowledged: Range<Int64>?) async {
        do {
            let ended = try await transition(jobId) { _ in .transferReleased(acknowledged: acknowledged) }
            if ended.before.state == .ready, ended.after.state == .done { logger.info("job \(jobId): image delivered whole; key consumed") }
        } catch {
            // Not recorded: the key stays retrievable meanwhile (the safe side); a shared claim runs out by
            // itself; what was delivered is recorded by the janitor once the ledger takes writes.
            if StorageFailure.isCancellation(error) {
                logger.notice("job \(jobId): recording the end of a transfer was cancelled; the janitor records it")
            } else {
                logger.error("job \(jobId): could not record the end of a transfer: \(error)")
            }
            if let acknowledged, !acknowledged.isEmpty { unrecorded.withLock { $0[jobId, default: []].append(.transferEnd(acknowledged)) } }
        }
    }

    /// Ends a transfer whose body never ran, without waiting (from a `deinit`): nothing was delivered,
    /// so only an image given up meanwhile needs work.
    func dropTransfer(key: String, jobId: String) {
        let givenUp = claims.withLock { $0.removeValue(forKey: key) }?.givenUp ?? false
        if givenUp { spool.removeImageNow(jobId: jobId) }
        droppedTransfers?.yield(jobId)
    }

    /// Another instance changed a job: an attempt running here that the ledger no longer has running
    /// (cancelled through that instance) stops.
    func changedElsewhere(_ jobId: String) async {
        guard cancellations.isRunning(jobId), let job = try? await store.job(id: jobId), job.state != .running else { return }
        cancellations.cancel(jobId)
    }

    /// How often a running transfer renews its shared claim, which lasts two leases (alone: never).
    var transferRenewal: Duration? { coordination.map { .seconds($0.leaseSeconds / 3) } }

    /// Keeps this instance's shared claim on a transfer that runs long.
    func renewTransfer(jobId: String) async {
        guard let coordination else { return }
        try? await coordination.renewTransfer(jobId: jobId, until: Date().timeIntervalSince1970 + coordination.leaseSeconds * 2)
    }

    // MARK: What requests hold

    /// Runs `body` with a subscription to `jobId`'s change signals, unsubscribed when it returns or throws.
    /// Several instances: the reader is recorded in the store at once (the janitor renews it each pass),
    /// so no other instance takes its job for abandoned in the meantime.
    func withSubscription<T>(to jobId: String, _ body: (JobFeed.Subscription) async throws -> T) async throws -> T {
        let subscription = feed.subscribe(jobId)
        defer { feed.unsubscribe(subscription) }
        try? await coordination?.markWatched([jobId], at: Date().timeIntervalSince1970)
        return try await body(subscription)
    }

    /// Sizes of what requests hold, for `/metrics`.
    var gauges: (claims: Int, chunkWrites: Int, cancellationScopes: Int, unrecorded: Int) {
        (claims.withLock { $0.count }, chunkWrites.load(ordering: .relaxed), cancellations.count, unrecordedCount)
    }

    /// A refusal of the state machine, thrown to the caller (the HTTP layer maps it to an answer).
    struct Refused: Error, Equatable {
        let refusal: Machine.Refusal
        init(_ refusal: Machine.Refusal) { self.refusal = refusal }
    }

    /// Runs a write, telling the storage guard when it failed on storage (a full disk releases its
    /// reserve; a store that refuses writes is marked). The callers say when a write went through.
    private func noting<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            storage.noticed(error)
            throw error
        }
    }

    // MARK: The machine

    /// Reports `event` for `jobId` under the ledger's lock, writes what was decided and performs it.
    private func transition(
        _ jobId: String, probe: ChunkProbe? = nil, inputs: Inputs = Inputs(), body: ByteBuffer? = nil, countingLocalTransfers: Bool = true,
        _ event: @escaping @Sendable (ChunkFacts?, JobRecord) -> Machine.Event
    ) async throws -> Transition {
        let transition = try await noting {
            try await store.update(jobId: jobId, probe: probe) { [self] job, chunkFacts in
                let decided = decide(
                    job, event(chunkFacts, job), facts: facts(of: job, now: inputs.now, countingLocalTransfers: countingLocalTransfers), inputs: inputs)
                // Under the row's lock, so the attempt is the one the machine saw end.
                if decided.1.actions.contains(.removeBytesFirst) { spool.removeSpoolNow(jobId: job.id, attempt: job.attempt) }
                return decided
            }
        }
        if transition?.wroteLedger == true { storage.wrote() }
        guard let transition else { throw GatewayError(.notFound, .jobNotFound, "no job \(jobId)") }
        await perform(transition.actions, on: transition, body: body)
        return transition
    }

    private func transition(
        _ jobId: String, inputs: Inputs = Inputs(), countingLocalTransfers: Bool = true, _ event: @escaping @Sendable (JobRecord) -> Machine.Event
    ) async throws -> Transition {
        try await transition(jobId, inputs: inputs, countingLocalTransfers: countingLocalTransfers) { event($1) }
    }

    /// Whether the machine would take `event` for `job` as read without a lock: a janitor asks first,
    /// so that it locks (and writes) only the rows an event may change; the locked look decides.
    func mayTake(_ event: Machine.Event, _ job: JobRecord, now: Double) -> Bool {
        if case .moved = Machine.decide(facts(of: job, now: now), event) { return true }
        return false
    }

    /// What the machine sees of a job now.
    func facts(of job: JobRecord, now: Double, countingLocalTransfers: Bool = true) -> Machine.Facts {
        let cluster = job.cluster
        let instance = coordination?.instance
        let claimedElsewhere = cluster.map { $0.claimOwner != nil && $0.claimOwner != instance && ($0.claimUntil ?? 0) >= now } ?? false
        let claimedHere = countingLocalTransfers && (job.imageKey.map { key in claims.withLock { $0[key] != nil } } ?? false)
        let watchedElsewhere = cluster?.watchedAt.map { now - $0 <= policy.presenceWindow } ?? false
        let leaseLive = cluster.map { $0.leaseOwner != nil && ($0.leaseUntil ?? 0) >= now } ?? false
        let leasedElsewhere = leaseLive && cluster?.leaseOwner != instance
        let presence = feed.presence(job.id)
        // A job nobody has read counts as seen when it was created, or when this gateway started.
        let lastSeen = max(presence.lastSeen ?? job.createdAt, feed.startedAt, cluster?.watchedAt ?? 0)
        let retentionFrom = job.state == .done && job.delivery == .stream ? job.readyAt : job.finishedAt
        return Machine.Facts(
            state: job.state, delivery: job.delivery, attempt: job.attempt, imageBytes: job.totalBytes, delivered: job.deliveredCoverage,
            streamKept: job.expiresAt != nil, transferInProgress: claimedHere || claimedElsewhere,
            watched: presence.watching || watchedElsewhere, leasedElsewhere: leasedElsewhere, leaseLive: leaseLive,
            expiryDue: job.expiresAt.map { $0 <= now } ?? false,
            retentionOver: retentionFrom.map { $0 < now - policy.finishedRetention } ?? false,
            unwatchedFor: presence.watching ? 0 : now - lastSeen, clientGrace: policy.clientGrace)
    }

    /// The machine's decision on `event`, and the row it writes.
    private func decide(_ job: JobRecord, _ event: Machine.Event, facts: Machine.Facts, inputs: Inputs) -> (LedgerWrite?, Transition) {
        let decision = Machine.decide(facts, event)
        guard case .moved(let state, let actions) = decision else {
            return (nil, Transition(before: job, after: job, decision: decision, event: event))
        }
        let write = record(job, to: state, actions: actions, event: event, inputs: inputs)
        return (write, Transition(before: job, after: write?.job ?? job, decision: decision, event: event, wroteLedger: write != nil))
    }

    /// The row as a decided transition leaves it; nil when nothing in the ledger changes.
    private func record(_ old: JobRecord, to state: JobState, actions: Machine.Actions, event: Machine.Event, inputs: Inputs) -> LedgerWrite? {
        guard state != old.state || !actions.isDisjoint(with: Machine.Actions.ledgerWrites) else { return nil }
        var job = old
        var write = LedgerWrite(job: old)
        job.state = state
        if actions.contains(.recordError) {
            job.errorCode = inputs.error?.code
            job.errorMessage = inputs.error?.message
        }
        if actions.contains(.beginAttempt) {
            job.attempt += 1
            job.uploadToken = RandomToken.make()
            job.storedChunks = 0
            job.storedBytes = 0
            write.dropEarlierChunks = true
            if let coordination {
                var cluster = job.cluster ?? ClusterColumns()
                cluster.leaseOwner = coordination.instance
                cluster.leaseUntil = inputs.now + coordination.leaseSeconds
                job.cluster = cluster
            }
        }
        if actions.contains(.recordImage), let manifest = inputs.manifest {
            job.totalChunks = manifest.chunks
            job.totalBytes = manifest.bytes
            job.sha256 = manifest.sha256
            job.contentType = manifest.contentType
            job.readyAt = inputs.now
            job.expiresAt = inputs.keepUntil
            job.errorCode = nil
            job.errorMessage = nil
        }
        if actions.contains(.putBackInQueue) {
            job.queueOrder = inputs.queueOrder ?? job.queueOrder
            job.cluster?.leaseOwner = nil
            job.cluster?.leaseUntil = nil
        }
        if actions.contains(.takeClaim), let coordination {
            job.cluster?.claimOwner = coordination.instance
            job.cluster?.claimUntil = inputs.keepUntil
        }
        if actions.contains(.dropClaim), let coordination, job.cluster?.claimOwner == coordination.instance {
            job.cluster?.claimOwner = nil
            job.cluster?.claimUntil = nil
        }
        if actions.contains(.recordDelivery), case .transferReleased(let acknowledged?) = event {
            var delivered = job.deliveredCoverage
            delivered.add(acknowledged)
            job.delivered = delivered.text
        }
        if actions.contains(.forgetStream) { job.expiresAt = nil }
        if actions.contains(.reserveChunk) { write.reserve = inputs.chunk }
        if actions.contains(.countChunk), let chunk = inputs.chunk {
            job.storedChunks += 1
            job.storedBytes += Int64(chunk.size)
            write.written = chunk
        }
        // Only a running attempt uploads; a job that ends or goes back to the queue has no token.
        if state != .running { job.uploadToken = nil }
        if state != old.state, [.done, .failed, .cancelled, .expired].contains(state), state != .done || old.state == .ready {
            job.finishedAt = inputs.now
        }
        write.job = job
        return write
    }

    /// Does what a transition asked for besides its ledger write, after the write committed.
    private func perform(_ actions: Machine.Actions, on transition: Transition, body: ByteBuffer? = nil) async {
        let job = transition.after
        activity.record(transition, at: Date().timeIntervalSince1970)
        if transition.before.state == .running, job.state != .running || job.attempt != transition.before.attempt {
            storage.forgetRefusal(jobId: job.id)
        }
        if actions.contains(.stopInvocation) { cancellations.cancel(job.id) }
        if actions.contains(.removeAllBytes) { await spool.removeSpool(jobId: job.id) }
        if actions.contains(.removeAttemptBytes) { await spool.removeSpool(jobId: job.id, attempt: transition.before.attempt) }
        if actions.contains(.removeOfferedBytes), let attempt = transition.offeredAttempt {
            await spool.removeSpool(jobId: job.id, attempt: attempt)
        }
        if actions.contains(.removeImage) { await spool.removeImage(jobId: job.id) }
        if actions.contains(.removeImageAfterTransfer), let key = job.imageKey {
            let heldHere = claims.withLock { claims -> Bool in
                guard claims[key] != nil else { return false }
                claims[key]?.givenUp = true
                return true
            }
            // Held by another instance: its release deletes the image (or the sweep, once the claim runs out).
            let heldElsewhere = job.cluster.map { $0.claimOwner != nil && $0.claimOwner != coordination?.instance } ?? false
            if !heldHere && !heldElsewhere { await spool.removeImage(jobId: job.id) }
        }
        if actions.contains(.beginDigest) {
            // Chunks that run ahead of a gap wait in memory up to two caps (the memory budget is 4 × cap).
            let digest = AttemptDigest(attempt: job.attempt, holdLimit: 2 * job.chunkSize)
            digests.withLock { $0[job.id] = digest }
        }
        if actions.contains(.feedDigest), let body, let index = transition.writtenIndex {
            currentDigest(of: job)?.stored(body, index: index)
        }
        if actions.contains(.dropDigest) { _ = digests.withLock { $0.removeValue(forKey: job.id) } }
        if actions.contains(.forgetPresence) { feed.forget(job.id) }
        if actions.contains(.signalJob) { feed.notify(job.id) }
        if actions.contains(.signalQueue) {
            feed.notifyQueue()  // other instances' dispatchers wake on it too
        } else if actions.contains(.wakeDispatcher) {
            feed.notifyDispatchers()
        }
        if actions.contains(.wakeDispatcher) { admission.wake() }
    }

    /// The running digest of `job`'s attempt, if that attempt is still the one being hashed (made only
    /// when an attempt starts, never by a chunk: one that lands as its attempt ends finds nothing to feed).
    private func currentDigest(of job: JobRecord) -> AttemptDigest? {
        digests.withLock { $0[job.id] }.flatMap { $0.attempt == job.attempt ? $0 : nil }
    }
}

extension JobLifecycle.Transition {
    /// The attempt a chunk event was about.
    fileprivate var offeredAttempt: Int? { chunk?.attempt }
    /// The index a chunk event was about.
    fileprivate var writtenIndex: Int? { chunk?.index }

    private var chunk: JobStateMachine.ChunkOffer? {
        switch event {
        case .chunkOffered(let offer), .chunkWritten(let offer): offer
        default: nil
        }
    }
}
