import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import RelayProtocol
import ServiceLifecycle
import Synchronization

/// One execution environment: a function process and the Runtime API endpoint that serves only it.
///
/// The environment is warm between invocations and dies when its process exits, is killed at a
/// deadline, or reports an init error.
final class ExecutionEnvironment: Sendable {
    /// An invocation handed to the function by `GET .../invocation/next`.
    struct Assignment: Sendable {
        var requestID: String
        var payload: ByteBuffer
        var deadlineMilliseconds: Int64
        var traceID: String
        var clientContext: String?
        /// Where a streamed response goes as it is written; nil for a buffered invoke, which collects it.
        var sink: ResponseStreamSink?
    }

    /// What the Runtime API does with a streamed response's bytes.
    enum StreamTarget: Sendable {
        case forward(ResponseStreamSink)
        case collect
    }

    /// How the function ended an invocation.
    enum Completion: Sendable {
        case response(ByteBuffer)
        case error(type: String, payload: ByteBuffer)
        case timedOut
        /// The caller stopped waiting (its task was cancelled); the process was killed.
        case cancelled
        /// The process went over the function's memory size and was killed.
        case outOfMemory
        case exited(FunctionProcess.Exit)
        /// The environment died before the function took the event: safe to run it elsewhere.
        case undelivered
    }

    /// Why an environment never became ready.
    struct InitFailure: Error, Sendable {
        var errorType: String
        var payload: ByteBuffer
    }

    private enum Phase { case starting, ready, dead }

    private struct State {
        var phase = Phase.starting
        var process: FunctionProcess?
        var spawnedAt: ContinuousClock.Instant?
        var initDuration: Duration?
        var nextWaiter: CheckedContinuation<Assignment?, Never>?
        var queued: Assignment?
        var current: (requestID: String, continuation: CheckedContinuation<Completion, Never>, sink: ResponseStreamSink?)?
        var initFailure: InitFailure?
        /// Output lines of the invocation in progress (for `X-Amz-Log-Type: Tail`).
        var log: [String] = []
        var logBytes = 0
        var lastUsed = ContinuousClock.now
        /// An invocation cancelled before the function took it: it must not be delivered afterwards.
        var cancelledRequest: String?
    }

    /// Output kept per invocation; Lambda's log tail is 4 KB, this keeps more for `chunkrelay invoke`.
    static let logLimit = 64 << 10

    let id: String
    let function: FunctionConfiguration
    /// The pool's generation it was started in; a rebuild (`serve --watch`) retires older ones.
    let generation: Int
    private let logger: Logger
    private let state = Mutex(State())
    /// How initialisation ended: set (under `state`'s lock, so it agrees with `phase`) by the first
    /// `next` or by the environment's death, whichever comes first.
    private let readiness = Latch<Result<Duration, InitFailure>>()

    init(id: String, function: FunctionConfiguration, generation: Int = 0, logger: Logger) {
        self.id = id
        self.function = function
        self.generation = generation
        var logger = logger
        logger[metadataKey: "function"] = .string(function.name)
        logger[metadataKey: "environment"] = .string(id)
        self.logger = logger
    }

    /// Serves the Runtime API, starts the process and lives until the process exits or the task is cancelled.
    func run(commandLine: [String], environment: [String: String], host: String) async {
        let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let app = Application(
            router: RuntimeAPIRouter.make(for: self),
            server: .http1(configuration: .init(additionalChannelHandlers: [TrailerCapture()])),
            configuration: .init(address: .hostname(host, port: 0), serverName: nil),
            onServerRunning: { channel in
                portContinuation.yield(channel.localAddress?.port ?? 0)
                portContinuation.finish()
            },
            logger: Logger(label: "runtime-api", factory: { _ in SwiftLogNoOpLogHandler() })
        )
        // Stopped by a graceful shutdown, never by cancelling its task: a connection accepted just as the task
        // is cancelled is dropped unserved and NIO traps ("Deinited NIOAsyncWriter without calling finish()",
        // swift-nio #2637) — the churn soak hit it about once in 10,000 environments.
        let server = ServiceGroup(configuration: .init(services: [app], logger: Logger(label: "runtime-api", factory: { _ in SwiftLogNoOpLogHandler() })))
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                do { try await server.run() } catch { self.logger.debug("runtime API server ended: \(error)") }
                portContinuation.finish()
            }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next(), port > 0 else {
                markDead(.status(-1), failure: InitFailure(errorType: "Runtime.StartError", payload: LambdaErrorPayload.make(type: "Runtime.StartError", message: "runtime API endpoint did not start")))
                await server.triggerGracefulShutdown()
                return
            }
            var variables = environment
            variables["AWS_LAMBDA_RUNTIME_API"] = "\(host):\(port)"
            let process = FunctionProcess()
            let killed = state.withLock { state -> Bool in
                state.process = process
                state.spawnedAt = ContinuousClock.now
                return state.phase == .dead
            }
            // Killed before it started (shutdown, a cancelled invocation): the kill is sent as it starts.
            if killed { process.signal(SIGKILL) }
            let exit: FunctionProcess.Exit
            do {
                // Cancelling this task kills the process (swift-subprocess's teardown ends with SIGKILL).
                exit = try await process.run(commandLine: commandLine, directory: function.directory, environment: variables, logger: logger) {
                    [weak self] line in self?.capture(line)
                }
            } catch {
                markDead(.status(-1), failure: InitFailure(errorType: "Runtime.StartError", payload: LambdaErrorPayload.make(type: "Runtime.StartError", message: "could not start \(commandLine.joined(separator: " ")): \(error)")))
                await server.triggerGracefulShutdown()
                return
            }
            logger.debug("process ended: \(exit)")
            markDead(exit, failure: nil)
            await server.triggerGracefulShutdown()
        }
    }

    /// Waits for the function's first `next` (initialisation done); returns the init duration. A caller
    /// cancelled meanwhile gets `Runtime.Cancelled` (the environment goes on starting; the caller decides).
    func waitUntilReady() async -> Result<Duration, InitFailure> {
        await readiness.wait()
            ?? .failure(InitFailure(errorType: "Runtime.Cancelled", payload: LambdaErrorPayload.make(type: "Runtime.Cancelled", message: "the invocation was cancelled while its environment started")))
    }

    private func capture(_ line: String) {
        state.withLock { state in
            // Output is read from a pipe on another thread: a line can land just after its invocation
            // ended, and then shows in the next one's log rather than being lost.
            guard state.logBytes < Self.logLimit else { return }
            state.log.append(line)
            state.logBytes += line.utf8.count + 1
        }
    }

    /// Waits (at most `timeout`) until the function's output up to now has been read into the log.
    func catchUpWithOutput(within timeout: Duration) async {
        await state.withLock { $0.process }?.catchUpWithOutput(within: timeout)
    }

    /// The output of the invocation that just ended; clears it.
    func takeLog() -> [String] {
        state.withLock { state in
            defer {
                state.log = []
                state.logBytes = 0
            }
            return state.log
        }
    }

    /// When the environment last finished an invocation.
    var lastUsed: ContinuousClock.Instant { state.withLock { $0.lastUsed } }

    /// Hands an invocation to the function and waits for its outcome, killing the process at the deadline
    /// or when it goes over its memory size.
    ///
    /// Cancelling the caller cancels the invocation at whatever point it is — before the function took
    /// the event as much as during it — and the environment is given up, its process killed.
    func invoke(_ assignment: Assignment, timeout: Duration) async -> Completion {
        defer { state.withLock { $0.lastUsed = ContinuousClock.now } }
        return await withTaskCancellationHandler {
            await race(assignment, timeout: timeout)
        } onCancel: {
            cancel(assignment.requestID)
        }
    }

    private func race(_ assignment: Assignment, timeout: Duration) async -> Completion {
        await withTaskGroup(of: Completion?.self) { group in
            group.addTask { await self.deliver(assignment) }
            group.addTask {
                do {
                    try await Task.sleep(for: timeout)
                    self.stop(assignment.requestID, reporting: .timedOut)
                } catch {
                    // Cancelled: the outcome arrived, or the caller gave up (`cancel` has seen to that).
                }
                return nil
            }
            group.addTask {
                // Lambda stops a function that goes over its memory size; sampling RSS is the local equivalent.
                let limit = self.function.memorySize
                while !Task.isCancelled {
                    if let resident = self.state.withLock({ $0.process })?.residentMemoryMB(), resident > limit {
                        self.stop(assignment.requestID, reporting: .outOfMemory)
                        return nil
                    }
                    try? await Task.sleep(for: .milliseconds(20))
                }
                return nil
            }
            var outcome = Completion.timedOut
            while let next = await group.next() {
                if let next {
                    outcome = next
                    group.cancelAll()
                }
            }
            return outcome
        }
    }

    private func deliver(_ assignment: Assignment) async -> Completion {
        await withCheckedContinuation { continuation in
            enum Action { case none, wake(CheckedContinuation<Assignment?, Never>), refuse, cancelled }
            let action: Action = state.withLock { state in
                if state.cancelledRequest == assignment.requestID { return .cancelled }
                guard state.phase != .dead, state.current == nil else { return .refuse }
                state.current = (assignment.requestID, continuation, assignment.sink)
                if let waiter = state.nextWaiter {
                    state.nextWaiter = nil
                    return .wake(waiter)
                }
                state.queued = assignment
                return .none
            }
            switch action {
            case .none: break
            case .wake(let waiter): waiter.resume(returning: assignment)
            case .refuse: continuation.resume(returning: .undelivered)
            case .cancelled: continuation.resume(returning: .cancelled)
            }
        }
    }

    /// The caller gave up on `requestID`: whether the function has the event yet or not, it will not run
    /// it to the end here; the environment is given up and its process killed.
    private func cancel(_ requestID: String) {
        let (continuation, process) = state.withLock { state -> (CheckedContinuation<Completion, Never>?, FunctionProcess?) in
            state.cancelledRequest = requestID
            state.phase = .dead
            guard let current = state.current, current.requestID == requestID else { return (nil, state.process) }
            state.current = nil
            return (current.continuation, state.process)
        }
        process?.signal(SIGKILL)
        continuation?.resume(returning: .cancelled)
    }

    private func stop(_ requestID: String, reporting completion: Completion) {
        let (continuation, process) = state.withLock { state -> (CheckedContinuation<Completion, Never>?, FunctionProcess?) in
            guard let current = state.current, current.requestID == requestID else { return (nil, nil) }
            state.current = nil
            // No longer usable from this moment, even before the kill is observed.
            state.phase = .dead
            return (current.continuation, state.process)
        }
        guard let continuation else { return }
        // The platform freezes and discards an environment that timed out; a killed process is the local equivalent.
        process?.signal(SIGKILL)
        continuation.resume(returning: completion)
    }

    /// Whether the environment can take another invocation.
    var isAlive: Bool { state.withLock { $0.phase != .dead } }

    /// Peak memory of the process in MB.
    func peakMemoryMB() -> Int? { state.withLock { $0.process }?.peakMemoryMB() }

    /// Stops the process (`SIGTERM` for a graceful stop, `SIGKILL` otherwise).
    func terminate(signal: Int32) {
        guard let process = state.withLock({ $0.process }) else {
            // Not started yet: nothing to signal, but whoever waits for it must hear it ended.
            markDead(.signal(signal), failure: InitFailure(errorType: "Runtime.Shutdown", payload: LambdaErrorPayload.make(type: "Runtime.Shutdown", message: "the runtime is shutting down")))
            return
        }
        process.signal(signal)
    }

    private func markDead(_ exit: FunctionProcess.Exit, failure: InitFailure?) {
        let (waiter, current) = state.withLock { state in
            state.phase = .dead
            if let failure, state.initFailure == nil { state.initFailure = failure }
            let initFailure = state.initFailure ?? InitFailure(
                errorType: "Runtime.ExitError",
                payload: LambdaErrorPayload.make(type: "Runtime.ExitError", message: "Runtime exited with error: \(exit)")
            )
            readiness.set(.failure(initFailure))  // no effect once it was ready
            let undelivered = state.queued != nil
            defer {
                state.nextWaiter = nil
                state.current = nil
                state.queued = nil
            }
            return (state.nextWaiter, state.current.map { ($0.continuation, undelivered) })
        }
        waiter?.resume(returning: nil)
        if let (continuation, undelivered) = current {
            continuation.resume(returning: undelivered ? .undelivered : .exited(exit))
        }
    }

    // MARK: Runtime API side

    /// `GET /2018-06-01/runtime/invocation/next`: the first call ends initialisation.
    func nextInvocation() async -> Assignment? {
        await withCheckedContinuation { continuation in
            var replaced: CheckedContinuation<Assignment?, Never>?
            let immediate: Assignment?? = state.withLock { state in
                if state.phase == .starting {
                    state.phase = .ready
                    let duration = state.spawnedAt.map { ContinuousClock.now - $0 } ?? .zero
                    state.initDuration = duration
                    readiness.set(.success(duration))
                }
                if state.phase == .dead { return .some(nil) }
                if let queued = state.queued {
                    state.queued = nil
                    return .some(queued)
                }
                replaced = state.nextWaiter
                state.nextWaiter = continuation
                return .none
            }
            replaced?.resume(returning: nil)
            if let immediate { continuation.resume(returning: immediate) }
        }
    }

    /// `POST .../{id}/response` or `.../{id}/error`; false when the id is not the current invocation.
    func complete(requestID: String, with completion: Completion) -> Bool {
        let continuation = state.withLock { state -> CheckedContinuation<Completion, Never>? in
            guard let current = state.current, current.requestID == requestID else { return nil }
            state.current = nil
            return current.continuation
        }
        continuation?.resume(returning: completion)
        return continuation != nil
    }

    /// Where a streamed response of `requestID` goes; nil when it is not the current invocation.
    func streamTarget(for requestID: String) -> StreamTarget? {
        state.withLock { state in
            guard let current = state.current, current.requestID == requestID else { return nil }
            return current.sink.map { .forward($0) } ?? .collect
        }
    }

    /// `POST /2018-06-01/runtime/init/error`: the environment is discarded.
    func initFailed(errorType: String, payload: ByteBuffer) {
        let process = state.withLock { state -> FunctionProcess? in
            state.initFailure = InitFailure(errorType: errorType, payload: payload)
            return state.process
        }
        process?.signal(SIGKILL)
    }
}
