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
            for job in try await store.expiredReadyJobs(now: now) {
                guard let key = job.imageKey, !claims.withLock({ $0.contains(key) }) else { continue }
                if try await store.finish(jobId: job.id, from: [.ready], to: .expired) {
                    await spool.removeImage(jobId: job.id)
                    logger.info("job \(job.id): image expired unclaimed")
                }
            }
        } catch {
            logger.error("janitor pass failed: \(error)")
        }
    }

    /// Deletes the spool of streams finished longer ago than the resume grace.
    func sweepFinishedStreams(now: Double = Date().timeIntervalSince1970) async {
        do {
            for job in try await store.expiredStreams(now: now) {
                // A reader still catching up keeps the spool until it has read to the end.
                if feed.presence(job.id).watching { continue }
                await spool.removeSpool(jobId: job.id)
                try await store.clearExpiry(jobId: job.id)
                feed.forget(job.id)
            }
        } catch {
            logger.error("janitor pass failed: \(error)")
        }
    }

    /// Cancels stream-mode jobs nobody has watched for longer than the client grace: a stream has no
    /// one to deliver to once its client is gone, and the jobs behind it move up.
    func cancelAbandonedStreams(now: Double = Date().timeIntervalSince1970) async {
        let grace = Self.seconds(configuration.clientGrace)
        do {
            for job in try await store.unfinishedStreamJobs() {
                let presence = feed.presence(job.id)
                guard !presence.watching else { continue }
                let since = max(presence.lastSeen ?? job.createdAt, feed.startedAt)
                guard now - since > grace else { continue }
                let error = JobError(code: "client_gone", message: "no client watched this stream job for \(Int(grace)) s")
                if try await cancel(job, from: [.queued, .running], error: error) {
                    logger.notice("job \(job.id): cancelled, its stream client is gone")
                }
            }
        } catch {
            logger.error("janitor pass failed: \(error)")
        }
    }
}
