import RelayProtocol
import Testing

@testable import Gateway

/// Every (state, event) pair of a job's life, without a socket or a ledger: the table below is the
/// specification, and the variants after it cover what the facts change.
@Suite struct JobStateMachineTests {
    typealias Machine = JobStateMachine
    typealias A = Machine.Actions

    static let cap = 1024

    /// A job in `state` whose times have come (expiry, retention), nothing else going on.
    static func facts(_ state: JobState, delivery: DeliveryMode = .retrieve) -> Machine.Facts {
        Machine.Facts(state: state, delivery: delivery, attempt: 1, imageBytes: 100, expiryDue: true, retentionOver: true)
    }

    static func offer(attempt: Int = 1, size: Int = cap, existing: (String, Bool)? = nil, later: Bool = false, shortBefore: Bool = false)
        -> Machine.ChunkOffer
    {
        Machine.ChunkOffer(
            attempt: attempt, index: 3, sha256: "aa", size: size, chunkSize: cap, existing: existing.map { (sha256: $0.0, written: $0.1) },
            laterChunk: later, shortChunkBefore: shortBefore)
    }

    /// One representative event of each kind.
    static func event(_ kind: Machine.Event.Kind) -> Machine.Event {
        switch kind {
        case .attemptStarted: .attemptStarted
        case .chunkOffered: .chunkOffered(offer())
        case .chunkWritten: .chunkWritten(offer(existing: ("aa", false)))
        case .completed: .completed(attempt: 1)
        case .attemptFailed: .attemptFailed(attempt: 1, retry: false)
        case .cancelled: .cancelled
        case .abandoned: .abandoned
        case .expired: .expired
        case .transferClaimed: .transferClaimed
        case .transferReleased: .transferReleased(acknowledged: 0..<100)
        case .forgotten: .forgotten
        case .leaseLost: .leaseLost(.stopping)
        }
    }

    /// What every state answers to every kind of event (retrieve delivery, nothing else going on).
    static let table: [JobState: [Machine.Event.Kind: Machine.Decision]] = {
        let finishedRefusals: (JobState) -> [Machine.Event.Kind: Machine.Decision] = { state in
            [
                .attemptStarted: .refused(.finished(state)),
                .chunkOffered: .refused(.notRunning(state)),
                .chunkWritten: .refused(.notRunning(state), cleanup: .removeOfferedBytes),
                .completed: .refused(.notRunning(state)),
                .attemptFailed: .refused(.notRunning(state)),
                .cancelled: .refused(.finished(state)),
                .abandoned: .refused(.notThisDelivery),
                .expired: .refused(.finished(state)),
                .transferClaimed: .refused(.notReady(state)),
                .transferReleased: .moved(to: state, state == .failed ? [.dropClaim] : [.dropClaim, .removeImage]),
                .forgotten: .moved(to: state, [.deleteRow, .forgetPresence]),
                .leaseLost: .refused(.notRunning(state)),
            ]
        }
        return [
            .queued: [
                .attemptStarted: .moved(to: .running, [.beginAttempt, .beginDigest, .signalJob, .signalQueue]),
                .chunkOffered: .refused(.notRunning(.queued)),
                .chunkWritten: .refused(.notRunning(.queued), cleanup: .removeOfferedBytes),
                .completed: .refused(.notRunning(.queued)),
                .attemptFailed: .refused(.notRunning(.queued)),
                .cancelled: .moved(to: .cancelled, [.recordError, .forgetPresence, .signalJob, .signalQueue, .wakeDispatcher]),
                .abandoned: .refused(.notThisDelivery),
                .expired: .refused(.notReady(.queued)),
                .transferClaimed: .refused(.notReady(.queued)),
                .transferReleased: .moved(to: .queued, [.dropClaim]),
                .forgotten: .refused(.notFinished),
                .leaseLost: .refused(.notRunning(.queued)),
            ],
            .running: [
                .attemptStarted: .refused(.alreadyStarted),
                .chunkOffered: .moved(to: .running, [.reserveChunk, .writeChunk]),
                .chunkWritten: .moved(to: .running, [.countChunk, .feedDigest, .signalJob]),
                .completed: .moved(to: .ready, [.recordImage, .dropDigest, .signalJob]),
                .attemptFailed: .moved(to: .failed, [.recordError, .removeBytesFirst, .removeAllBytes, .dropDigest, .signalJob]),
                .cancelled: .moved(
                    to: .cancelled,
                    [.recordError, .stopInvocation, .removeAllBytes, .dropDigest, .forgetPresence, .signalJob, .wakeDispatcher]),
                .abandoned: .refused(.notThisDelivery),
                .expired: .refused(.notReady(.running)),
                .transferClaimed: .refused(.notReady(.running)),
                .transferReleased: .moved(to: .running, [.dropClaim]),
                .forgotten: .refused(.notFinished),
                .leaseLost: .moved(to: .queued, [.putBackInQueue, .removeAttemptBytes, .dropDigest, .signalJob, .signalQueue, .wakeDispatcher]),
            ],
            .ready: [
                .attemptStarted: .refused(.finished(.ready)),
                .chunkOffered: .refused(.notRunning(.ready)),
                // The bytes of the attempt a ready job serves are never dropped by a late upload.
                .chunkWritten: .refused(.notRunning(.ready)),
                .completed: .refused(.notRunning(.ready)),
                .attemptFailed: .refused(.notRunning(.ready)),
                .cancelled: .moved(to: .cancelled, [.recordError, .removeImage, .forgetPresence, .signalJob]),
                .abandoned: .refused(.notThisDelivery),
                .expired: .moved(to: .expired, [.removeImage, .signalJob]),
                .transferClaimed: .moved(to: .ready, [.takeClaim]),
                .transferReleased: .moved(to: .done, [.dropClaim, .recordDelivery, .removeImage, .signalJob]),
                .forgotten: .refused(.notFinished),
                .leaseLost: .refused(.notRunning(.ready)),
            ],
            .done: [
                .attemptStarted: .refused(.finished(.done)),
                .chunkOffered: .refused(.notRunning(.done)),
                .chunkWritten: .refused(.notRunning(.done)),
                .completed: .refused(.notRunning(.done)),
                .attemptFailed: .refused(.notRunning(.done)),
                .cancelled: .refused(.finished(.done)),
                .abandoned: .refused(.notThisDelivery),
                .expired: .refused(.finished(.done)),
                .transferClaimed: .refused(.notReady(.done)),
                .transferReleased: .moved(to: .done, [.dropClaim]),
                .forgotten: .moved(to: .done, [.deleteRow, .forgetPresence]),
                .leaseLost: .refused(.notRunning(.done)),
            ],
            .failed: finishedRefusals(.failed),
            .cancelled: finishedRefusals(.cancelled),
            .expired: finishedRefusals(.expired),
        ]
    }()

    @Test(arguments: JobState.allCases)
    func everyEventInEveryState(state: JobState) throws {
        let row = try #require(Self.table[state])
        #expect(row.count == Machine.Event.Kind.allCases.count, "the table's row for \(state) names every kind of event")
        for kind in Machine.Event.Kind.allCases {
            let expected = try #require(row[kind], "\(state) × \(kind)")
            #expect(Machine.decide(Self.facts(state), Self.event(kind)) == expected, "\(state) × \(kind)")
        }
    }

    @Test func aNewJobIsQueuedAndWakesTheDispatcherButNoWaitingClient() {
        // It joins at the back: nobody's place changes, so the waiting streams are not woken.
        #expect(Machine.created.state == .queued)
        #expect(Machine.created.actions == [.wakeDispatcher])
    }

    @Test func aJobStartsOnlyBelowTheConcurrencyLimit() {
        var facts = Self.facts(.queued)
        facts.atConcurrencyLimit = true
        #expect(Machine.decide(facts, .attemptStarted) == .refused(.atConcurrencyLimit))
    }

    // MARK: Time

    @Test func nothingExpiresOrIsForgottenBeforeItsTime() {
        for state in JobState.allCases {
            var facts = Self.facts(state, delivery: .stream)
            facts.streamKept = true
            facts.expiryDue = false
            facts.retentionOver = false
            if state.isFinished || state == .ready {
                #expect(Machine.decide(facts, .expired) == .refused(.notDue), "\(state)")
            }
            if state.isFinished {
                #expect(Machine.decide(facts, .forgotten) == .refused(.notDue), "\(state)")
            }
        }
    }

    @Test func aStreamJobIsAbandonedOnlyWhenNoReaderWasOnItForTheGrace() {
        for state in [JobState.queued, .running] {
            var facts = Self.facts(state, delivery: .stream)
            facts.clientGrace = 30
            facts.unwatchedFor = 31
            #expect(Machine.decide(facts, .abandoned) == Machine.decide(facts, .cancelled), "\(state): abandoned is cancelled")
            facts.unwatchedFor = 29
            #expect(Machine.decide(facts, .abandoned) == .refused(.notDue), "\(state): within the grace")
            facts.unwatchedFor = 31
            facts.watched = true
            #expect(Machine.decide(facts, .abandoned) == .refused(.notDue), "\(state): a reader elsewhere")
        }
        var done = Self.facts(.done, delivery: .stream)
        done.unwatchedFor = .infinity
        #expect(Machine.decide(done, .abandoned) == .refused(.finished(.done)))
    }

    // MARK: Chunks

    @Test func theFirstDigestOfferedForAnIndexKeepsIt() {
        let running = Self.facts(.running)
        #expect(Machine.decide(running, .chunkOffered(Self.offer(existing: ("bb", false)))) == .refused(.chunkConflict(existing: "bb")))
        #expect(Machine.decide(running, .chunkOffered(Self.offer(existing: ("bb", true)))) == .refused(.chunkConflict(existing: "bb")))
        // The same bytes again: written by a first try (a no-op) or being written (written again, identically).
        #expect(Machine.decide(running, .chunkOffered(Self.offer(existing: ("aa", true)))) == .refused(.alreadyStored))
        #expect(Machine.decide(running, .chunkOffered(Self.offer(existing: ("aa", false)))) == .moved(to: .running, [.writeChunk]))
    }

    @Test func aConflictingOfferNeverAsksForAWrite() {
        for written in [false, true] {
            let decision = Machine.decide(Self.facts(.running), .chunkOffered(Self.offer(existing: ("bb", written))))
            guard case .refused(_, let cleanup) = decision else {
                Issue.record("a conflicting offer was taken: \(decision)")
                continue
            }
            #expect(!cleanup.contains(.writeChunk))
        }
    }

    @Test func onlyTheLastChunkMayBeShort() {
        let running = Self.facts(.running)
        #expect(Machine.decide(running, .chunkOffered(Self.offer(size: 10, later: true))) == .refused(.shortChunkNotLast))
        #expect(Machine.decide(running, .chunkOffered(Self.offer(shortBefore: true))) == .refused(.shortChunkNotLast))
        #expect(Machine.decide(running, .chunkOffered(Self.offer(size: 10))) == .moved(to: .running, [.reserveChunk, .writeChunk]))
    }

    @Test func chunksOfAnotherAttemptAreRefusedAndTheirBytesGo() {
        let running = Self.facts(.running)
        #expect(Machine.decide(running, .chunkOffered(Self.offer(attempt: 0))) == .refused(.attemptOver))
        #expect(Machine.decide(running, .chunkWritten(Self.offer(attempt: 0, existing: ("aa", false)))) == .refused(.attemptOver, cleanup: .removeOfferedBytes))
        #expect(Machine.decide(running, .chunkWritten(Self.offer(existing: ("aa", true)))) == .refused(.alreadyStored))
        // A finished stream serves its attempt's bytes; an older attempt's go.
        let done = Self.facts(.done, delivery: .stream)
        #expect(Machine.decide(done, .chunkWritten(Self.offer(existing: ("aa", false)))) == .refused(.notRunning(.done)))
        #expect(Machine.decide(done, .chunkWritten(Self.offer(attempt: 0))) == .refused(.notRunning(.done), cleanup: .removeOfferedBytes))
    }

    // MARK: Attempts

    @Test func aStreamCompletesAsDone() {
        #expect(Machine.decide(Self.facts(.running, delivery: .stream), .completed(attempt: 1)) == .moved(to: .done, [.recordImage, .dropDigest, .signalJob]))
        #expect(Machine.decide(Self.facts(.running), .completed(attempt: 2)) == .refused(.attemptOver))
    }

    @Test func aRetriedAttemptStartsAnewAndItsBytesGo() {
        #expect(
            Machine.decide(Self.facts(.running), .attemptFailed(attempt: 1, retry: true))
                == .moved(to: .running, [.recordError, .beginAttempt, .beginDigest, .removeBytesFirst, .removeAttemptBytes, .signalJob]))
        #expect(Machine.decide(Self.facts(.running), .attemptFailed(attempt: 0, retry: true)) == .refused(.attemptOver))
    }

    @Test func onlyTheLeaseHolderReportsAnAttemptOrLosesIt() {
        var facts = Self.facts(.running)
        facts.leasedElsewhere = true
        #expect(Machine.decide(facts, .attemptFailed(attempt: 1, retry: false)) == .refused(.leasedElsewhere))
        #expect(Machine.decide(facts, .attemptFailed(attempt: 1, retry: true)) == .refused(.leasedElsewhere))
        #expect(Machine.decide(facts, .leaseLost(.stopping)) == .refused(.leasedElsewhere))
        #expect(Machine.decide(facts, .leaseLost(.lapsed)) == .refused(.leasedElsewhere))
        #expect(Machine.decide(facts, .cancelled) == Machine.decide(Self.facts(.running), .cancelled), "a cancel reaches any instance's job")
    }

    /// Two janitors both saw a lapsed lease: the first took the job back and it started anew under a live
    /// lease (perhaps this instance's); the second, late, must not take that one back too.
    @Test func aLapsedLeaseIsTakenOverOnlyWhileItIsStillLapsed() {
        var facts = Self.facts(.running)
        #expect(Machine.decide(facts, .leaseLost(.lapsed)) == Machine.decide(facts, .leaseLost(.stopping)))
        facts.leaseLive = true
        #expect(Machine.decide(facts, .leaseLost(.lapsed)) == .refused(.leasedElsewhere), "this instance's own live lease")
        #expect(Machine.decide(facts, .leaseLost(.stopping)) == Machine.decide(Self.facts(.running), .leaseLost(.stopping)), "stopping returns its own")
    }

    // MARK: Transfers

    @Test func aTransferHoldsTheImageAgainstExpiryAndOthersAndOutlivesACancel() {
        var facts = Self.facts(.ready)
        facts.transferInProgress = true
        #expect(Machine.decide(facts, .expired) == .refused(.transferInProgress))
        #expect(Machine.decide(facts, .transferClaimed) == .refused(.transferInProgress))
        #expect(Machine.decide(facts, .cancelled) == .moved(to: .cancelled, [.recordError, .removeImageAfterTransfer, .forgetPresence, .signalJob]))
        // That transfer ends: the image goes then.
        #expect(Machine.decide(Self.facts(.cancelled), .transferReleased(acknowledged: 0..<100)) == .moved(to: .cancelled, [.dropClaim, .removeImage]))
    }

    @Test func rangesConsumeTheKeyOnlyWhenTogetherTheyCoverTheImage() {
        var facts = Self.facts(.ready)
        let partial: Machine.Decision = .moved(to: .ready, [.dropClaim, .recordDelivery])
        let consumed: Machine.Decision = .moved(to: .done, [.dropClaim, .recordDelivery, .removeImage, .signalJob])
        #expect(Machine.decide(facts, .transferReleased(acknowledged: 90..<100)) == partial, "the last bytes alone")
        facts.delivered = ByteCoverage([90..<100])
        #expect(Machine.decide(facts, .transferReleased(acknowledged: 0..<50)) == partial, "a gap remains")
        facts.delivered = ByteCoverage([90..<100, 0..<50])
        #expect(Machine.decide(facts, .transferReleased(acknowledged: 50..<90)) == consumed, "the last gap closed")
        #expect(Machine.decide(facts, .transferReleased(acknowledged: nil)) == .moved(to: .ready, [.dropClaim]), "nothing acknowledged")
        #expect(Machine.decide(facts, .transferReleased(acknowledged: 40..<60)) == partial, "overlapping, still a gap")
    }

    @Test func anEmptyImageIsDeliveredByATransferThatEndedWhole() {
        var facts = Self.facts(.ready)
        facts.imageBytes = 0
        #expect(Machine.decide(facts, .transferReleased(acknowledged: 0..<0)) == .moved(to: .done, [.dropClaim, .recordDelivery, .removeImage, .signalJob]))
        #expect(Machine.decide(facts, .transferReleased(acknowledged: nil)) == .moved(to: .ready, [.dropClaim]))
    }

    // MARK: Finished streams

    @Test func aFinishedStreamKeepsItsChunksWhileAnyReaderIsOnIt() {
        var facts = Self.facts(.done, delivery: .stream)
        facts.streamKept = true
        #expect(Machine.decide(facts, .expired) == .moved(to: .done, [.forgetStream, .removeAllBytes, .forgetPresence]))
        #expect(Machine.decide(facts, .forgotten) == .refused(.notFinished), "its row stays while its chunks are kept")
        facts.watched = true
        #expect(Machine.decide(facts, .expired) == .refused(.stillWatched))
        facts.streamKept = false
        #expect(Machine.decide(facts, .expired) == .refused(.finished(.done)))
        #expect(Machine.decide(facts, .forgotten) == .moved(to: .done, [.deleteRow, .forgetPresence]))
    }
}

/// The union of acknowledged byte ranges behind a key's consumption.
@Suite struct ByteCoverageTests {
    @Test func rangesMergeInAnyOrder() {
        let pieces: [Range<Int64>] = [0..<10, 30..<40, 10..<20, 20..<30]
        for order in [pieces, pieces.reversed(), [pieces[2], pieces[0], pieces[3], pieces[1]]] {
            var coverage = ByteCoverage()
            for (n, piece) in order.enumerated() {
                #expect(!coverage.covers(size: 40), "covered before piece \(n) of \(order)")
                coverage.add(piece)
            }
            #expect(coverage.covers(size: 40))
            #expect(coverage.ranges == [0..<40])
        }
    }

    @Test func gapsOverlapsAndTheLedgersText() throws {
        var coverage = ByteCoverage([5..<10, 0..<3])
        #expect(coverage.count == 8)
        #expect(!coverage.covers(size: 10))
        coverage.add(2..<6)
        #expect(coverage.ranges == [0..<10])
        #expect(coverage.covers(size: 10))
        #expect(!coverage.covers(size: 11))
        #expect(!ByteCoverage().covers(size: 0), "an empty image is the machine's case")
        let text = ByteCoverage([0..<3, 7..<9]).text
        #expect(text == "0-3,7-9")
        #expect(try #require(ByteCoverage(text: text)).ranges == [0..<3, 7..<9])
        #expect(ByteCoverage(text: "")?.ranges == [])
        for bad in ["x", "3-1", "-1-2", "1-2,", "1"] {
            #expect(ByteCoverage(text: bad) == nil, "\(bad)")
        }
    }
}
