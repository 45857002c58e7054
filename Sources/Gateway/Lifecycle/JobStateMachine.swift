import RelayProtocol

/// A job's life: which events each state takes, where each leads, and what it asks to be done.
///
/// Pure: no I/O, no lock, no clock. `JobLifecycle` reads the job's row under the ledger's lock, turns
/// it into `Facts`, asks `decide(_:_:)`, writes what was decided in the same transaction and performs
/// the actions afterwards. Every rule of a job's life is here: the stores persist, and the routes, the
/// dispatcher, the janitor and the PostgreSQL bridge only report events.
///
/// ```
/// queued ──attemptStarted──▶ running ──completed──▶ ready (retrieve) ──transfers cover it──▶ done
///    ▲                        │  ▲                  └──────────────▶ done (stream) ──grace over──▶ (bytes go)
///    └──────leaseLost─────────┘  └─attemptFailed(retry)   running ──attemptFailed──▶ failed
/// queued/running/ready ──cancelled──▶ cancelled      ready ──expired──▶ expired
/// ```
struct JobStateMachine {
    /// What the machine looks at: the job's row, and what other parts know about it now.
    struct Facts: Sendable, Equatable {
        var state: JobState
        var delivery: DeliveryMode
        /// The ledger's current attempt (0 before the first).
        var attempt: Int
        /// The verified image's size, once complete.
        var imageBytes: Int64? = nil
        /// What transfers of the image have delivered so far.
        var delivered = ByteCoverage()
        /// A finished stream's chunks are still kept for resumes.
        var streamKept = false
        /// A transfer of the image runs, on this instance or another (besides the one the event is about).
        var transferInProgress = false
        /// A client reads the job's stream now, through this instance or another.
        var watched = false
        /// Several instances: another instance holds the running job's lease and reports its outcome.
        var leasedElsewhere = false
        /// Several instances: some instance (this one too) holds a lease on the running job that has not run out.
        var leaseLive = false
        /// The ready image's time to live, or the finished stream's resume grace, has run out.
        var expiryDue = false
        /// The finished job's retention has run out.
        var retentionOver = false
        /// How long no reader has been on the job's stream, on any instance (0 while one is).
        var unwatchedFor: Double = 0
        /// How long a stream job may go without a reader before it is abandoned.
        var clientGrace: Double = .infinity
        /// As many jobs run as the concurrency limit allows (among every instance sharing the store).
        var atConcurrencyLimit = false
    }

    /// A chunk upload as the ledger sees it at that index of that attempt.
    struct ChunkOffer: Sendable, Equatable {
        var attempt: Int
        var index: Int
        var sha256: String
        var size: Int
        var chunkSize: Int
        /// The digest the ledger already holds at this index (the first offer's), and whether its bytes are written.
        var existing: (sha256: String, written: Bool)?
        /// The attempt has a chunk at a higher index.
        var laterChunk = false
        /// The attempt has a short chunk at a lower index.
        var shortChunkBefore = false

        static func == (a: ChunkOffer, b: ChunkOffer) -> Bool {
            a.attempt == b.attempt && a.index == b.index && a.sha256 == b.sha256 && a.size == b.size && a.chunkSize == b.chunkSize
                && a.existing?.sha256 == b.existing?.sha256 && a.existing?.written == b.existing?.written
                && a.laterChunk == b.laterChunk && a.shortChunkBefore == b.shortChunkBefore
        }
    }

    /// What happens to a job.
    enum Event: Sendable, Equatable {
        /// The dispatcher takes the queued job (its first attempt, or the next after it went back to the queue).
        case attemptStarted
        /// A chunk upload whose body matched its digest asks for its index.
        case chunkOffered(ChunkOffer)
        /// The bytes of an offered chunk are where chunks are served from.
        case chunkWritten(ChunkOffer)
        /// The function completed an attempt, and count, size and whole-image digest matched the stored bytes.
        case completed(attempt: Int)
        /// An attempt failed; the runtime retries it (`retry`) or gives up.
        case attemptFailed(attempt: Int, retry: Bool)
        /// A client cancelled the job.
        case cancelled
        /// The janitor found a stream job whose reader went away.
        case abandoned
        /// The ready image's time to live, or the finished stream's resume grace, ran out.
        case expired
        /// A transfer of the image wants to start.
        case transferClaimed
        /// A transfer of the image ended; its client acknowledged `acknowledged` (nil: nothing).
        case transferReleased(acknowledged: Range<Int64>?)
        /// The finished job's retention ran out: its row goes.
        case forgotten
        /// The instance running the attempt stopped: this one (`stopping`: a restart after a crash, or
        /// shutdown) or another whose lease ran out (`lapsed`).
        case leaseLost(LeaseLoss)

        /// How an attempt's instance was lost.
        enum LeaseLoss: Sendable, Equatable {
            /// This instance stops, or restarts after a crash, with the attempt unfinished.
            case stopping
            /// The lease of the instance running it ran out (the instance was killed).
            case lapsed
        }

        /// Every kind of event, for tests that walk the whole table.
        enum Kind: CaseIterable {
            case attemptStarted, chunkOffered, chunkWritten, completed, attemptFailed, cancelled, abandoned, expired, transferClaimed, transferReleased
            case forgotten, leaseLost
        }
    }

    /// What an event asks to be done, in the ledger's transaction (`ledger`) or after it (the rest).
    struct Actions: OptionSet, Sendable, Hashable {
        let rawValue: UInt32
        // Ledger writes.
        /// Take the chunk's index for this digest.
        static let reserveChunk = Actions(rawValue: 1 << 0)
        /// Count the written chunk in the attempt's progress.
        static let countChunk = Actions(rawValue: 1 << 1)
        /// A new attempt: next number, new upload token, the earlier attempts' chunks forgotten.
        static let beginAttempt = Actions(rawValue: 1 << 2)
        /// Record the verified image (totals, digest, content type, its time to keep).
        static let recordImage = Actions(rawValue: 1 << 3)
        /// Record the event's error as the job's.
        static let recordError = Actions(rawValue: 1 << 4)
        /// Back to the front of the queue, in its old order.
        static let putBackInQueue = Actions(rawValue: 1 << 5)
        /// Record this transfer's claim (several instances).
        static let takeClaim = Actions(rawValue: 1 << 6)
        /// Record the bytes the transfer delivered.
        static let recordDelivery = Actions(rawValue: 1 << 7)
        /// Record that the transfer's claim ended (several instances).
        static let dropClaim = Actions(rawValue: 1 << 8)
        /// The finished stream's chunks are no longer kept.
        static let forgetStream = Actions(rawValue: 1 << 9)
        /// Delete the job's row.
        static let deleteRow = Actions(rawValue: 1 << 10)
        // Bytes.
        /// Write the chunk's bytes (the ledger has given this digest the index).
        static let writeChunk = Actions(rawValue: 1 << 11)
        /// Drop the bytes this request wrote for an attempt that ended meanwhile.
        static let removeOfferedBytes = Actions(rawValue: 1 << 12)
        /// Drop the chunks of the attempt that ended.
        static let removeAttemptBytes = Actions(rawValue: 1 << 13)
        /// Drop every attempt's chunks.
        static let removeAllBytes = Actions(rawValue: 1 << 14)
        /// Drop the image now.
        static let removeImage = Actions(rawValue: 1 << 15)
        /// Drop the image when the transfer that holds it ends.
        static let removeImageAfterTransfer = Actions(rawValue: 1 << 16)
        // Signals.
        /// The job's subscribers look again.
        static let signalJob = Actions(rawValue: 1 << 17)
        /// Waiting clients look at their place: only when a job leaves the queue or goes back in at its
        /// front, the moves that change anyone's place (a job joining at the back, or a running one
        /// ending, changes none, and waking every waiting stream for them made a queue of N cost N² to fill).
        static let signalQueue = Actions(rawValue: 1 << 18)
        /// The dispatcher looks at the queue.
        static let wakeDispatcher = Actions(rawValue: 1 << 19)
        /// Stop the running invocation.
        static let stopInvocation = Actions(rawValue: 1 << 20)
        /// Forget who watched the job.
        static let forgetPresence = Actions(rawValue: 1 << 21)
        /// The in-memory digest of the attempt starts anew, takes a written chunk, or goes.
        static let beginDigest = Actions(rawValue: 1 << 22)
        static let feedDigest = Actions(rawValue: 1 << 23)
        static let dropDigest = Actions(rawValue: 1 << 24)
        /// Drop the ending attempt's chunks before the ledger write rather than after it, so that on a
        /// full disk the write that records the failure has the room they took. Only where nothing of
        /// them can be used whatever the write's fate: the attempt's invocation has ended.
        static let removeBytesFirst = Actions(rawValue: 1 << 25)

        /// The actions that write the ledger.
        static let ledgerWrites: Actions = [
            .reserveChunk, .countChunk, .beginAttempt, .recordImage, .recordError, .putBackInQueue, .takeClaim, .recordDelivery,
            .dropClaim, .forgetStream, .deleteRow,
        ]
    }

    /// Why an event was not taken.
    enum Refusal: Sendable, Equatable {
        /// The job is not running (it is in this state).
        case notRunning(JobState)
        /// The event is about an attempt that is not the current one.
        case attemptOver
        /// The attempt already runs.
        case alreadyStarted
        /// The index holds another digest.
        case chunkConflict(existing: String)
        /// The index holds these bytes already.
        case alreadyStored
        /// Only the last chunk may be shorter than the cap.
        case shortChunkNotLast
        /// The image is not (or no longer) ready: the job is in this state.
        case notReady(JobState)
        /// Another transfer holds the image.
        case transferInProgress
        /// A client still reads the finished stream.
        case stillWatched
        /// Another instance holds the running job's lease.
        case leasedElsewhere
        /// The job has ended (in this state).
        case finished(JobState)
        /// The job has not ended, or its bytes are still kept.
        case notFinished
        /// Its time has not come (expiry, retention, a stream's client grace).
        case notDue
        /// As many jobs run as the concurrency limit allows.
        case atConcurrencyLimit
        /// The event does not apply to this delivery.
        case notThisDelivery
    }

    /// The machine's answer to an event.
    enum Decision: Sendable, Equatable {
        /// The job moves to `state` (which may be the one it is in) and these are done.
        case moved(to: JobState, Actions)
        /// Nothing changes in the ledger; `cleanup` is still done.
        case refused(Refusal, cleanup: Actions = [])
    }

    /// What a new job is and asks for.
    static let created: (state: JobState, actions: Actions) = (.queued, [.wakeDispatcher])

    /// The one place where an event meets a state.
    static func decide(_ facts: Facts, _ event: Event) -> Decision {
        let state = facts.state
        switch event {
        case .attemptStarted:
            switch state {
            case .queued:
                guard !facts.atConcurrencyLimit else { return .refused(.atConcurrencyLimit) }
                return .moved(to: .running, [.beginAttempt, .beginDigest, .signalJob, .signalQueue])
            case .running: return .refused(.alreadyStarted)
            default: return .refused(.finished(state))
            }

        case .chunkOffered(let offer):
            guard state == .running else { return .refused(.notRunning(state)) }
            guard offer.attempt == facts.attempt else { return .refused(.attemptOver) }
            if let existing = offer.existing {
                guard existing.sha256 == offer.sha256 else { return .refused(.chunkConflict(existing: existing.sha256)) }
                // The same bytes again: a retry racing its first try writes what that one writes.
                return existing.written ? .refused(.alreadyStored) : .moved(to: .running, [.writeChunk])
            }
            // Offsets are index × cap, so only the last chunk may be short.
            if offer.shortChunkBefore || (offer.size < offer.chunkSize && offer.laterChunk) { return .refused(.shortChunkNotLast) }
            return .moved(to: .running, [.reserveChunk, .writeChunk])

        case .chunkWritten(let offer):
            // Bytes written for an attempt that ended meanwhile go, unless they are the bytes a finished
            // job serves (an index taken before completion, which waits for every taken index).
            let serving = (state == .ready || state == .done) && offer.attempt == facts.attempt
            guard state == .running, offer.attempt == facts.attempt else {
                return .refused(state == .running ? .attemptOver : .notRunning(state), cleanup: serving ? [] : .removeOfferedBytes)
            }
            guard let existing = offer.existing, existing.sha256 == offer.sha256 else {
                // Its reservation went (the attempt began anew under the same number cannot happen; a
                // conflict cannot have replaced it): keep the ledger's word and drop nothing it serves.
                return .refused(.chunkConflict(existing: offer.existing?.sha256 ?? ""))
            }
            return existing.written ? .refused(.alreadyStored) : .moved(to: .running, [.countChunk, .feedDigest, .signalJob])

        case .completed(let attempt):
            guard state == .running else { return .refused(.notRunning(state)) }
            guard attempt == facts.attempt else { return .refused(.attemptOver) }
            return .moved(to: facts.delivery == .retrieve ? .ready : .done, [.recordImage, .dropDigest, .signalJob])

        case .attemptFailed(let attempt, let retry):
            guard state == .running else { return .refused(.notRunning(state)) }
            guard attempt == facts.attempt else { return .refused(.attemptOver) }
            // An instance whose lease ran out reports late: the job was taken over.
            guard !facts.leasedElsewhere else { return .refused(.leasedElsewhere) }
            if retry {
                return .moved(to: .running, [.recordError, .beginAttempt, .beginDigest, .removeBytesFirst, .removeAttemptBytes, .signalJob])
            }
            return .moved(to: .failed, [.recordError, .removeBytesFirst, .removeAllBytes, .dropDigest, .signalJob])

        case .abandoned:
            guard facts.delivery == .stream else { return .refused(.notThisDelivery) }
            guard state == .queued || state == .running else { return .refused(.finished(state)) }
            guard !facts.watched, facts.unwatchedFor > facts.clientGrace else { return .refused(.notDue) }
            return decide(facts, .cancelled)

        case .cancelled:
            switch state {
            case .queued:
                return .moved(to: .cancelled, [.recordError, .forgetPresence, .signalJob, .signalQueue, .wakeDispatcher])
            case .running:
                return .moved(
                    to: .cancelled, [.recordError, .stopInvocation, .removeAllBytes, .dropDigest, .forgetPresence, .signalJob, .wakeDispatcher])
            case .ready:
                let image: Actions = facts.transferInProgress ? .removeImageAfterTransfer : .removeImage
                return .moved(to: .cancelled, [.recordError, image, .forgetPresence, .signalJob])
            default:
                return .refused(.finished(state))
            }

        case .expired:
            guard state == .queued || state == .running || facts.expiryDue else { return .refused(.notDue) }
            switch state {
            case .ready:
                guard !facts.transferInProgress else { return .refused(.transferInProgress) }
                return .moved(to: .expired, [.removeImage, .signalJob])
            case .done where facts.delivery == .stream:
                guard facts.streamKept else { return .refused(.finished(state)) }
                // A reader on any instance still catching up keeps the chunks until it has read to the end.
                guard !facts.watched else { return .refused(.stillWatched) }
                return .moved(to: .done, [.forgetStream, .removeAllBytes, .forgetPresence])
            case .queued, .running:
                return .refused(.notReady(state))
            default:
                return .refused(.finished(state))
            }

        case .transferClaimed:
            guard state == .ready else { return .refused(.notReady(state)) }
            guard !facts.transferInProgress else { return .refused(.transferInProgress) }
            return .moved(to: .ready, [.takeClaim])

        case .transferReleased(let acknowledged):
            guard state == .ready else {
                // The image was given up while this transfer held it (cancelled): it goes now.
                let image: Actions = (state == .cancelled || state == .expired) ? .removeImage : []
                return .moved(to: state, [.dropClaim, image])
            }
            guard let acknowledged else { return .moved(to: .ready, [.dropClaim]) }
            var delivered = facts.delivered
            delivered.add(acknowledged)
            let size = facts.imageBytes ?? 0
            // An empty image has no bytes to acknowledge: a transfer of it that ended whole delivered it.
            if size == 0 || delivered.covers(size: size) {
                return .moved(to: .done, [.dropClaim, .recordDelivery, .removeImage, .signalJob])
            }
            return .moved(to: .ready, [.dropClaim, .recordDelivery])

        case .forgotten:
            guard !state.isFinished || facts.retentionOver else { return .refused(.notDue) }
            switch state {
            case .failed, .cancelled, .expired:
                return .moved(to: state, [.deleteRow, .forgetPresence])
            case .done:
                guard !(facts.delivery == .stream && facts.streamKept) else { return .refused(.notFinished) }
                return .moved(to: state, [.deleteRow, .forgetPresence])
            case .queued, .running, .ready:
                return .refused(.notFinished)
            }

        case .leaseLost(let loss):
            guard state == .running else { return .refused(.notRunning(state)) }
            // Another instance runs it and renews its lease: that one is alive. And a lease taken over as
            // lapsed must still be lapsed (the job may have been taken over and started anew meanwhile).
            guard !facts.leasedElsewhere else { return .refused(.leasedElsewhere) }
            guard loss == .stopping || !facts.leaseLive else { return .refused(.leasedElsewhere) }
            return .moved(to: .queued, [.putBackInQueue, .removeAttemptBytes, .dropDigest, .signalJob, .signalQueue, .wakeDispatcher])
        }
    }
}

extension JobState {
    /// Whether a job in this state has ended (a ready image has not: it waits for its retrieval).
    var isFinished: Bool { [.done, .failed, .cancelled, .expired].contains(self) }
}
