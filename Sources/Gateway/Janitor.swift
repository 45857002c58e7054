import Foundation
import Logging
import RelayProtocol
import ServiceLifecycle

/// Expires images nobody claimed within their time to live and deletes their files.
struct Janitor: Sendable {
    let interval: Duration

    /// The `Service` that runs the janitor.
    struct Runner: Service {
        let gateway: Gateway

        func run() async throws {
            await cancelWhenGracefulShutdown {
                while !Task.isCancelled {
                    await gateway.sweepExpiredImages()
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
}
