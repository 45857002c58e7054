import Foundation
import Logging
import RelayProtocol
import ServiceLifecycle
import Synchronization

/// The FIFO admission queue's dispatcher: starts queued jobs in order while fewer than
/// `maxConcurrency` invocations run, each in a child task of its `run()`.
final class AdmissionQueue: Sendable {
    let maxConcurrency: Int
    private let logger: Logger
    private let wakeups: AsyncStream<Void>
    private let wakeupContinuation: AsyncStream<Void>.Continuation
    /// Invocations under way.
    private let running = Atomic<Int>(0)

    init(maxConcurrency: Int, logger: Logger) {
        self.maxConcurrency = maxConcurrency
        self.logger = logger
        // One pending wake-up is enough: each one drains the queue as far as slots allow.
        (wakeups, wakeupContinuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Asks the dispatcher to look at the queue again (a job was queued or an invocation ended).
    func wake() {
        wakeupContinuation.yield()
    }

    /// The `Service` that runs the dispatcher.
    struct Runner: Service {
        let gateway: Gateway

        func run() async throws {
            try await gateway.admission.run(gateway: gateway)
        }
    }

    private func run(gateway: Gateway) async throws {
        let baseURL = await withGracefulShutdownHandler {
            await gateway.waitForBaseURL()
        } onGracefulShutdown: {
            gateway.setBaseURL("http://shutting-down.invalid")
        }
        wake()
        await withDiscardingTaskGroup { group in
            await withGracefulShutdownHandler {
                for await _ in wakeups {
                    while self.running.load(ordering: .acquiring) < maxConcurrency {
                        let job: JobRecord?
                        do {
                            job = try await gateway.store.startNextAttempt()
                        } catch {
                            logger.error("could not take the next job from the ledger: \(error)")
                            break
                        }
                        guard let job else { break }
                        self.running.add(1, ordering: .acquiringAndReleasing)
                        group.addTask {
                            await gateway.runAttempt(job, baseURL: baseURL)
                            self.running.subtract(1, ordering: .acquiringAndReleasing)
                            self.wake()
                        }
                    }
                }
            } onGracefulShutdown: {
                self.wakeupContinuation.finish()
            }
            // Stopping: in-flight invocations are cancelled (their processes killed); the jobs stay
            // `running` in the ledger and go to the front of the queue on the next start.
            group.cancelAll()
        }
    }
}

extension Gateway {
    /// Invokes the function for one attempt of a job and settles the job by the outcome.
    func runAttempt(_ job: JobRecord, baseURL: String) async {
        let event = InvocationEvent(
            jobId: job.id, attempt: job.attempt, params: job.decodedParams, chunkSize: job.chunkSize,
            ingestURL: "\(baseURL)/v1/jobs/\(job.id)", uploadToken: job.uploadToken ?? ""
        )
        logger.info("job \(job.id): invoking \(job.function) (attempt \(job.attempt))")
        let outcome = await invoker.invoke(function: job.function, event: event)
        if Task.isCancelled { return }
        let failure: JobError
        switch outcome {
        case .succeeded:
            failure = JobError(code: "incomplete_upload", message: "\(job.function) returned without completing the upload")
        case .failed(let error):
            failure = error
        }
        do {
            // Only a job still running failed: one the function completed before failing keeps its image.
            if try await store.finish(jobId: job.id, from: [.running], to: .failed, error: failure) {
                logger.warning("job \(job.id) failed: \(failure.code): \(failure.message)")
                await spool.removeSpool(jobId: job.id)
            }
        } catch {
            logger.error("job \(job.id): could not record its outcome: \(error)")
        }
    }
}
