import Foundation
import Logging
import RelayProtocol
import ServiceLifecycle
import Synchronization

/// The FIFO admission queue's dispatcher: starts queued jobs in order while the state machine lets
/// them (the shared concurrency limit), each in a child task of its `run()`. A job whose function is
/// at its own limit (reserved concurrency) keeps its place while jobs of other functions pass it.
final class AdmissionQueue: Sendable {
    private let logger: Logger
    private let wakeups: AsyncStream<Void>
    private let wakeupContinuation: AsyncStream<Void>.Continuation
    /// Invocations under way, by function.
    private let running = Mutex<[String: Int]>([:])
    /// Set once no invocation runs after shutdown began.
    private let idle = Latch<Void>()

    private var runningCount: Int { running.withLock { $0.values.reduce(0, +) } }

    init(logger: Logger) {
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
            await gateway.waitForBaseURL() ?? "http://shutting-down.invalid"
        } onGracefulShutdown: {
            gateway.setBaseURL("http://shutting-down.invalid")
        }
        wake()
        await withDiscardingTaskGroup { group in
            await withGracefulShutdownHandler {
                for await _ in wakeups {
                    while true {
                        // Functions at their own reserved concurrency in this instance's runtime keep their place;
                        // whether the next job may start at all is the state machine's to say (the shared limit).
                        let busy = self.running.withLock { running in
                            Set(running.filter { function, count in gateway.invoker.concurrencyLimit(function: function).map { count >= $0 } ?? false }.keys)
                        }
                        let job: JobRecord?
                        do {
                            job = try await gateway.lifecycle.startNextAttempt(excluding: busy)
                        } catch {
                            // A cancelled dispatcher (its service group torn down) ends here: every later
                            // look would fail at once, and a loop of them would never sleep.
                            guard !Task.isCancelled else { return }
                            // Nothing else may wake the dispatcher for the jobs already waiting: look again soon.
                            logger.error("could not take the next job from the ledger (looking again in 1 s): \(error)")
                            do { try await Task.sleep(for: .seconds(1)) } catch { return }
                            continue
                        }
                        guard let job else { break }
                        self.running.withLock { $0[job.function, default: 0] += 1 }
                        group.addTask {
                            await gateway.runAttempt(job, baseURL: baseURL)
                            self.running.withLock { $0[job.function, default: 1] -= 1 }
                            // Stopping waits for the last invocation to end, no longer than the grace.
                            if gateway.draining.load(ordering: .relaxed), self.runningCount == 0 { _ = self.idle.set(()) }
                            self.wake()
                        }
                    }
                }
            } onGracefulShutdown: {
                gateway.draining.store(true, ordering: .relaxed)
                self.wakeupContinuation.finish()
            }
            // Stopping: running invocations may finish (their uploads still reach the gateway, whose
            // HTTP server stops after this) within the grace; the rest are cancelled, their processes killed.
            await withTaskGroup(of: Void.self) { waiting in
                waiting.addTask { try? await Task.sleep(for: gateway.configuration.shutdownGrace) }
                waiting.addTask { _ = await self.idle.wait() }
                if self.runningCount == 0 { _ = self.idle.set(()) }
                await waiting.next()
                waiting.cancelAll()
            }
            group.cancelAll()
        }
        // What did not finish goes back to the front of the queue now (a restart would do it too, but
        // the ledger should say what is true while the gateway is down).
        do {
            let requeued = try await gateway.lifecycle.returnRunningToQueue()
            if requeued > 0 { logger.notice("put \(requeued) unfinished job(s) back at the front of the queue") }
        } catch {
            logger.error("could not put running jobs back in the queue: \(error)")
        }
    }
}

extension Gateway {
    static func invocationEvent(_ job: JobRecord, baseURL: String) -> InvocationEvent {
        InvocationEvent(
            jobId: job.id, attempt: job.attempt, params: job.decodedParams, chunkSize: job.chunkSize,
            ingestURL: "\(baseURL)/v1/jobs/\(job.id)", uploadToken: job.uploadToken ?? ""
        )
    }

    /// Rolls failed attempt `attempt` back before the runtime retries (see `JobLifecycle.retry`).
    func prepareRetry(jobId: String, attempt: Int, failure: JobError, baseURL: String) async -> InvocationEvent? {
        do {
            return try await lifecycle.retry(jobId: jobId, attempt: attempt, after: failure).map { Self.invocationEvent($0, baseURL: baseURL) }
        } catch {
            logger.error("job \(jobId): could not prepare a retry: \(error)")
            return nil
        }
    }

    /// Invokes the function for one attempt of a job and settles the job by the outcome.
    ///
    /// The attempt runs inside its cancellation scope, and the ledger is read again once the scope
    /// exists: a DELETE before that point is in the ledger, one after it sets the scope's latch, so a
    /// cancel at any moment of dispatch stops the invocation (or keeps it from starting).
    func runAttempt(_ job: JobRecord, baseURL: String) async {
        await lifecycle.cancellations.withScope(job.id) { cancelled in
            guard let current = try? await lifecycle.store.job(id: job.id), current.state == .running, current.attempt == job.attempt else {
                logger.info("job \(job.id): cancelled before its invocation started")
                return
            }
            await runAttempt(job, baseURL: baseURL, cancelled: cancelled)
        }
    }

    private func runAttempt(_ job: JobRecord, baseURL: String, cancelled: Latch<Void>) async {
        let event = Self.invocationEvent(job, baseURL: baseURL)
        logger.info("job \(job.id): invoking \(job.function) (attempt \(job.attempt))")
        // The attempt the runtime is on (its retries start new ones): an outcome is reported for it, so a
        // late report never ends an attempt that came after it.
        let attempt = CurrentAttempt(job.attempt)
        // Race the invocation against the job's cancellation: whichever ends first stops the other.
        let outcome: InvocationOutcome? = await withTaskGroup(of: InvocationOutcome?.self) { group in
            group.addTask {
                await self.invoker.invoke(function: job.function, event: event) { failure in
                    let next = await self.prepareRetry(jobId: job.id, attempt: attempt.number, failure: failure, baseURL: baseURL)
                    if let next { attempt.number = next.attempt }
                    return next
                }
            }
            group.addTask {
                let byClient = await cancelled.wait() != nil
                return byClient ? nil : .failed(JobError(code: "interrupted", message: "the gateway is stopping"))
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        guard let outcome, !Task.isCancelled else {
            logger.info("job \(job.id): invocation stopped (\(outcome == nil ? "job cancelled" : "shutting down"))")
            return
        }
        let failure: JobError
        switch outcome {
        case .succeeded:
            failure = JobError(code: "incomplete_upload", message: "\(job.function) returned without completing the upload")
        case .failed(let error):
            failure = error
        }
        await lifecycle.settleFailure(jobId: job.id, attempt: attempt.number, with: failure)
    }
}

/// The attempt an invocation is on, as its retries move it on.
private final class CurrentAttempt: Sendable {
    private let value: Atomic<Int>
    init(_ number: Int) { value = Atomic(number) }
    var number: Int {
        get { value.load(ordering: .relaxed) }
        set { value.store(newValue, ordering: .relaxed) }
    }
}
