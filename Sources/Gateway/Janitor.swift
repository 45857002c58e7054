import Foundation
import Logging
import RelayProtocol
import ServiceLifecycle

/// Expires images nobody claimed within their time to live, deletes finished streams' spools after
/// their resume grace, and cancels stream jobs whose client has gone away.
struct Janitor: Sendable {
    let interval: Duration

    /// The `Service` that runs the janitor.
    struct Runner: Service {
        let gateway: Gateway

        func run() async throws {
            await cancelWhenGracefulShutdown {
                while !Task.isCancelled {
                    await gateway.sweepExpiredImages()
                    await gateway.sweepFinishedStreams()
                    await gateway.cancelAbandonedStreams()
                    await gateway.forgetFinishedJobs()
                    await gateway.tendLeases()
                    await gateway.lifecycle.spool.sweep()
                    try? await Task.sleep(for: gateway.janitor.interval)
                }
            }
        }
    }
}

extension Gateway {
    /// One janitor pass: expires ready images past their TTL (never one being transferred).
    func sweepExpiredImages(now: Double = Date().timeIntervalSince1970) async {
        do {
            for job in try await lifecycle.store.expiredReadyJobs(now: now) {
                _ = try await lifecycle.expireImage(job)
            }
        } catch is CancellationError {
            // Shutting down: the pass ends with the janitor.
        } catch {
            logger.error("janitor pass failed: \(error)")
        }
    }

    /// Deletes the spool of streams finished longer ago than the resume grace.
    func sweepFinishedStreams(now: Double = Date().timeIntervalSince1970) async {
        do {
            for job in try await lifecycle.store.expiredStreams(now: now) {
                // A reader still catching up keeps the spool until it has read to the end.
                if lifecycle.feed.presence(job.id).watching { continue }
                try await lifecycle.expireStream(job)
            }
        } catch is CancellationError {
            // Shutting down: the pass ends with the janitor.
        } catch {
            logger.error("janitor pass failed: \(error)")
        }
    }

    /// Renews this instance's leases and takes over the running jobs of an instance that was killed.
    func tendLeases() async {
        do {
            let requeued = try await lifecycle.tendLeases()
            if requeued > 0 { logger.notice("took over \(requeued) job(s) whose instance stopped renewing its lease: back at the front of the queue") }
        } catch is CancellationError {
            // Shutting down.
        } catch {
            logger.error("janitor pass failed: \(error)")
        }
    }

    /// Cancels stream-mode jobs nobody has watched for longer than the client grace: a stream has no
    /// one to deliver to once its client is gone, and the jobs behind it move up.
    func cancelAbandonedStreams(now: Double = Date().timeIntervalSince1970) async {
        let grace = configuration.clientGrace.inSeconds
        do {
            let jobs = try await lifecycle.store.unfinishedStreamJobs()
            // Instances sharing a store: each says in the store which jobs it has clients of, so that
            // another instance's janitor does not take a watched job for abandoned.
            let watchedHere = Set(jobs.map(\.id).filter { lifecycle.feed.presence($0).watching })
            try await lifecycle.store.markWatched(Array(watchedHere), at: now)
            let watchedAnywhere = try await lifecycle.store.lastWatched(jobs.map(\.id).filter { !watchedHere.contains($0) })
            for job in jobs {
                let presence = lifecycle.feed.presence(job.id)
                guard !presence.watching else { continue }
                let since = max(presence.lastSeen ?? job.createdAt, lifecycle.feed.startedAt, watchedAnywhere[job.id] ?? 0)
                guard now - since > grace else { continue }
                let error = JobError(code: "client_gone", message: "no client watched this stream job for \(Int(grace)) s")
                if try await lifecycle.cancel(job, from: [.queued, .running], error: error) {
                    logger.notice("job \(job.id): cancelled, its stream client is gone")
                }
            }
        } catch is CancellationError {
            // Shutting down: the pass ends with the janitor.
        } catch {
            logger.error("janitor pass failed: \(error)")
        }
    }

    /// Deletes the ledger rows of jobs that ended longer ago than `finishedRetention`, so the ledger
    /// stays the size of recent work however long the gateway runs.
    func forgetFinishedJobs(now: Double = Date().timeIntervalSince1970) async {
        do {
            let forgotten = try await lifecycle.forgetFinished(before: now - configuration.finishedRetention.inSeconds)
            if forgotten > 0 { logger.debug("forgot \(forgotten) finished job(s)") }
        } catch is CancellationError {
            // Shutting down: the pass ends with the janitor.
        } catch {
            logger.error("janitor pass failed: \(error)")
        }
    }
}
