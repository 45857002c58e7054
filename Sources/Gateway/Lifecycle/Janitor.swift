import AsyncAlgorithms
import Foundation
import Logging
import RelayProtocol
import ServiceLifecycle

/// Expires images nobody claimed within their time to live, deletes finished streams' chunks after
/// their resume grace, cancels stream jobs whose client has gone away, forgets old jobs, and (several
/// instances) tends leases and records which streams have readers here. It reports events; whether
/// each one takes is `JobStateMachine`'s to say.
struct Janitor: Sendable {
    let interval: Duration

    /// The `Service` that runs the janitor: a pass at once, then one per interval until shutdown; and
    /// (several instances) the record of this instance's readers on a beat of its own, so that a slow
    /// pass never lets another instance take a read stream for abandoned.
    struct Runner: Service {
        let gateway: Gateway

        func run() async throws {
            await withDiscardingTaskGroup { group in
                if gateway.lifecycle.coordination != nil {
                    group.addTask { await repeating { await gateway.recordWatchedStreams() } }
                }
                group.addTask { await repeating { await gateway.janitorPass() } }
            }
        }

        /// `work` at once, then once per janitor interval until graceful shutdown.
        private func repeating(_ work: () async -> Void) async {
            await work()
            for await _ in AsyncTimerSequence(interval: gateway.janitor.interval, clock: .continuous).cancelOnGracefulShutdown() {
                await work()
            }
        }
    }
}

extension Gateway {
    /// One pass of everything the janitor does.
    func janitorPass() async {
        // Leases first: the rest of a pass can be slow on a loaded machine, and a lease renewed late is a
        // job another instance takes over. Then what could not be recorded (failures free their bytes);
        // last the look at free space, after the expiries that free more, and the queue, which waits
        // while storage is short.
        await tendLeases()
        let waiting = await lifecycle.recordUnrecorded()
        if waiting > 0 { logger.warning("\(waiting) outcome(s) still wait for the ledger to take writes") }
        await sweepExpiredImages()
        await sweepFinishedStreams()
        await cancelAbandonedStreams()
        await forgetFinishedJobs()
        await lifecycle.spool.sweep()
        await lifecycle.storage.refresh()
        if lifecycle.storage.shortage == nil { admission.wake() }
    }

    /// Runs one part of a pass; a failure is logged and the next pass tries again.
    private func janitorStep(_ body: () async throws -> Void) async {
        do {
            try await body()
        } catch is CancellationError {
            // Shutting down: the pass ends with the janitor.
        } catch {
            lifecycle.storage.noticed(error)
            // Storage short: the guard said so once; each pass that meets it again is detail.
            let level: Logger.Level = StorageFailure(error) == nil ? .error : .debug
            logger.log(level: level, "janitor pass failed: \(PostgresURL.describe(error))")
        }
    }

    /// Several instances: records in the store the stream jobs this instance has readers of, running or
    /// finished, so that no other instance's janitor takes them for abandoned or drops their chunks.
    func recordWatchedStreams(now: Double = Date().timeIntervalSince1970) async {
        guard let coordination = lifecycle.coordination else { return }
        await janitorStep {
            let streams = try await lifecycle.store.jobs([
                JobFilter(states: [.queued, .running], delivery: .stream), JobFilter(states: [.done], delivery: .stream, expiresBy: .infinity),
            ])
            try await coordination.markWatched(streams.map(\.id).filter { lifecycle.feed.presence($0).watching }, at: now)
        }
    }

    /// Expires ready images past their TTL (never one being transferred).
    func sweepExpiredImages(now: Double = Date().timeIntervalSince1970) async {
        await janitorStep {
            for job in try await lifecycle.store.jobs([JobFilter(states: [.ready], expiresBy: now)]) where lifecycle.mayTake(.expired, job, now: now) {
                _ = try await lifecycle.expire(jobId: job.id, now: now)
            }
        }
    }

    /// Drops the chunks of streams finished longer ago than the resume grace (never while a reader on
    /// any instance is still on the stream).
    func sweepFinishedStreams(now: Double = Date().timeIntervalSince1970) async {
        await janitorStep {
            for job in try await lifecycle.store.jobs([JobFilter(states: [.done], delivery: .stream, expiresBy: now)])
            where lifecycle.mayTake(.expired, job, now: now) {
                _ = try await lifecycle.expire(jobId: job.id, now: now)
            }
        }
    }

    /// Several instances: renews this instance's leases and takes over the running jobs of an instance
    /// that was killed.
    func tendLeases() async {
        await janitorStep {
            let requeued = try await lifecycle.tendLeases()
            if requeued > 0 { logger.notice("took over \(requeued) job(s) whose instance stopped renewing its lease: back at the front of the queue") }
        }
    }

    /// Cancels stream-mode jobs nobody has watched, here or (several instances) anywhere, for longer than
    /// the client grace: a stream has no one to deliver to once its client is gone.
    func cancelAbandonedStreams(now: Double = Date().timeIntervalSince1970) async {
        await janitorStep {
            for job in try await lifecycle.store.jobs([JobFilter(states: [.queued, .running], delivery: .stream)])
            where lifecycle.mayTake(.abandoned, job, now: now) {
                if try await lifecycle.abandon(jobId: job.id, now: now) { logger.notice("job \(job.id): cancelled, its stream client is gone") }
            }
        }
    }

    /// Deletes the ledger rows of jobs that ended longer ago than `finishedRetention`, so the ledger
    /// stays the size of recent work however long the gateway runs.
    func forgetFinishedJobs(now: Double = Date().timeIntervalSince1970) async {
        await janitorStep {
            let forgotten = try await lifecycle.forgetFinished(now: now)
            if forgotten > 0 { logger.debug("forgot \(forgotten) finished job(s)") }
        }
    }
}
