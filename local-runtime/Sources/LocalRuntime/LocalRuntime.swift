import Foundation
import Logging
import NIOCore
import RelayProtocol
import ServiceLifecycle
import Synchronization

/// The Lambda-like local runtime: starts execution environments on demand, reuses them while warm,
/// enforces timeouts, and invokes functions for the Invoke API and for the gateway.
///
/// It is a `Service`: `run()` owns every environment's task, so they end with it.
public final class LocalRuntime: Service, Sendable {
    /// The configuration it runs with.
    public let configuration: RuntimeConfiguration
    /// The functions it knows.
    public let registry: FunctionRegistry
    private let logger: Logger
    private let builder: FunctionBuilder
    private let pools: [String: EnvironmentPool]
    private let spawns: AsyncStream<SpawnRequest>
    private let spawnContinuation: AsyncStream<SpawnRequest>.Continuation
    private let live = Mutex<[String: ExecutionEnvironment]>([:])
    private let counter = Atomic<Int>(0)
    /// `Event` invocations accepted and not finished (bounded by `maximumPendingEvents`).
    private let pendingEvents = Mutex(0)
    /// Set at graceful shutdown; ends the idle reaper.
    private let stopping = Atomic<Bool>(false)
    /// Each Function URL once its server listens, by function name.
    let functionURLs = Mutex<[String: String]>([:])
    /// The API port's base URL once it listens (a template's `Api` and `HttpApi` events).
    let apiAddress = Mutex<String?>(nil)
    /// The recent invocations, for the inspector.
    public let invocations = InvocationLog()

    /// Makes a runtime; nothing starts until `run()`.
    public init(configuration: RuntimeConfiguration, registry: FunctionRegistry, logger: Logger) {
        self.configuration = configuration
        self.registry = registry
        self.logger = logger
        self.builder = FunctionBuilder(packageRoot: configuration.packageRoot, binDirectories: configuration.binDirectories, logger: logger)
        var pools: [String: EnvironmentPool] = [:]
        for (name, function) in registry.functions {
            pools[name] = EnvironmentPool(limit: function.reservedConcurrency ?? configuration.defaultConcurrency)
        }
        self.pools = pools
        (spawns, spawnContinuation) = AsyncStream.makeStream(of: SpawnRequest.self)
    }

    /// Runs environments until graceful shutdown, then stops their processes.
    public func run() async throws {
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.reapIdleEnvironments() }
                for await request in spawns {
                    if let event = request.event {
                        group.addTask {
                            defer { self.pendingEvents.withLock { $0 -= 1 } }
                            let result = try? await self.invokeRetrying(
                                event.function, payload: event.payload, trace: event.trace, requestID: event.requestID
                            ) { failed, attempt in
                                self.logger.warning("Event invocation of \(event.function) failed (\(failed.errorType ?? "")); retry \(attempt - 1)")
                                return event.payload
                            }
                            if let result, !result.succeeded {
                                self.logger.warning("Event invocation of \(event.function) failed after its retries: \(result.errorMessage ?? "")")
                            }
                        }
                        continue
                    }
                    guard let environment = request.environment else { continue }
                    let variables = lambdaEnvironment(for: environment.function)
                    group.addTask {
                        await environment.run(commandLine: request.commandLine, environment: variables, host: self.configuration.host)
                        _ = self.live.withLock { $0.removeValue(forKey: environment.id) }
                    }
                }
                // Shutting down: ask politely, then insist.
                let environments = live.withLock { Array($0.values) }
                for environment in environments { environment.terminate(signal: SIGTERM) }
                let deadline = ContinuousClock.now + configuration.shutdownGrace
                while ContinuousClock.now < deadline, !live.withLock({ $0.isEmpty }) {
                    try? await Task.sleep(for: .milliseconds(20))
                }
                for environment in environments { environment.terminate(signal: SIGKILL) }
            }
        } onGracefulShutdown: {
            self.stopping.store(true, ordering: .relaxed)
            self.spawnContinuation.finish()
        }
    }

    /// Invokes `name` with `payload` and waits for the outcome (the `RequestResponse` type; `Event`
    /// invocations are this, run on another task). Waits for a free environment when all are busy.
    /// `trace` continues a caller's X-Ray trace (`X-Amzn-Trace-Id`); by default one is begun.
    public func invoke(
        _ name: String, payload: ByteBuffer, clientContext: String? = nil, trace: XRayTraceID = .begin()
    ) async throws(RuntimeError) -> InvocationResult {
        try await invoke(name, payload: payload, clientContext: clientContext, trace: trace, throttle: false)
    }

    /// Invokes, or throws `TooManyRequestsException` at once when every allowed environment is busy.
    public func invokeOrThrottle(
        _ name: String, payload: ByteBuffer, clientContext: String? = nil, trace: XRayTraceID = .begin()
    ) async throws(RuntimeError) -> InvocationResult {
        try await invoke(name, payload: payload, clientContext: clientContext, trace: trace, throttle: true)
    }

    /// Builds `name` again (its Swift product, or its `build` steps) and retires its warm environments,
    /// and those of every function started from the same Swift product (`chaos-url` runs `chaos`), so
    /// that the next invocation runs the new code. Returns the functions retired and how many idle
    /// environments were stopped (busy ones stop when their invocation ends). A failed build retires
    /// nothing: the previous build keeps serving.
    public func rebuild(_ name: String) async throws(RuntimeError) -> (functions: [String], stopped: Int) {
        guard let function = registry.function(named: name) else {
            throw RuntimeError.functionNotFound(name)
        }
        try await builder.rebuild(function)
        let sharing = registry.functions.values.filter { other in
            other.name == name || (function.swiftProduct != nil && other.swiftProduct == function.swiftProduct)
        }.map(\.name).sorted()
        var stopped = 0
        for other in sharing {
            guard let pool = pools[other] else { continue }
            let retired = await pool.retire()
            for environment in retired { environment.terminate(signal: SIGKILL) }
            stopped += retired.count
        }
        return (sharing, stopped)
    }

    /// The files `name`'s build steps wrote into its folder.
    func buildOutputs(of name: String) async -> Set<String> {
        await builder.buildOutputs[name] ?? []
    }

    /// How many environments of `name` are running, and how many of those wait warm for an invocation.
    public func environments(of name: String) async -> (live: Int, warm: Int) {
        guard let pool = pools[name] else { return (0, 0) }
        return (await pool.liveCount, await pool.idleCount)
    }

    /// Sizes of what the runtime holds, for the gateway's `/metrics`.
    public var gauges: [String: Int] {
        ["pending_event_invocations": pendingEvents.withLock { $0 }, "live_environments": live.withLock { $0.count }]
    }

    /// Stops environments that stayed idle longer than `idleTimeout`, as the platform reclaims them.
    private func reapIdleEnvironments() async {
        let interval = min(configuration.idleTimeout / 4, .seconds(1))
        while !stopping.load(ordering: .relaxed) {
            // Cancelled without a graceful shutdown (the service group torn down): stop, rather than spin.
            do { try await Task.sleep(for: interval) } catch { return }
            let cutoff = ContinuousClock.now - configuration.idleTimeout
            for pool in pools.values {
                for environment in await pool.reapIdle(unusedSince: cutoff) {
                    logger.debug("stopping idle environment \(environment.id)")
                    environment.terminate(signal: SIGKILL)
                }
            }
        }
    }

    /// Invokes as Lambda runs an asynchronous (`Event`) invocation: a function error, timeout or crash is
    /// retried up to the function's `maximumRetryAttempts` with a growing pause. Before each retry
    /// `beforeRetry` gets the failed result and the next attempt's number and returns that attempt's
    /// payload (Lambda resends the same event; the gateway hands out a new upload token), or nil to stop.
    /// Every attempt runs under the one `requestID`, as Lambda's retries of an event do: a function that
    /// keeps the ids it has seen knows a retry by it.
    public func invokeRetrying(
        _ name: String, payload: ByteBuffer, trace: XRayTraceID = .begin(), requestID: String? = nil,
        beforeRetry: @Sendable (InvocationResult, Int) async -> ByteBuffer?
    ) async throws(RuntimeError) -> InvocationResult {
        let requestID = requestID ?? Self.newRequestID()
        guard let function = registry.function(named: name) else {
            throw RuntimeError.functionNotFound(name)
        }
        var payload = payload
        var attempt = 1
        var pause = configuration.retryBackoff
        while true {
            // Every attempt of one event belongs to the same trace, as Lambda's retries do.
            let result = try await invoke(name, payload: payload, clientContext: nil, trace: trace, throttle: false, requestID: requestID)
            switch result.status {
            case .success, .cancelled:
                return result
            case .functionError, .timedOut, .environmentFailure:
                guard attempt <= function.maximumRetryAttempts else { return result }
            }
            do { try await Task.sleep(for: pause) } catch { return result }
            // A runtime that is stopping starts no new attempt (its environments are going away).
            guard !stopping.load(ordering: .relaxed) else { return result }
            pause *= 2
            attempt += 1
            guard let next = await beforeRetry(result, attempt) else { return result }
            payload = next
        }
    }

    /// Queues an `Event` invocation: checks it and returns at once with the request id it (and each of its
    /// retries) will run under; the outcome is only logged.
    @discardableResult
    public func invokeAsync(_ name: String, payload: ByteBuffer, trace: XRayTraceID = .begin()) throws(RuntimeError) -> String {
        guard let function = registry.function(named: name) else {
            throw RuntimeError.functionNotFound(name)
        }
        guard payload.readableBytes <= function.maximumEventBytes else {
            throw RuntimeError(.requestTooLarge, "Request must be smaller than \(function.maximumEventBytes) bytes for the InvokeFunction operation")
        }
        let accepted = pendingEvents.withLock { pending -> Bool in
            guard pending < configuration.maximumPendingEvents else { return false }
            pending += 1
            return true
        }
        guard accepted else {
            throw RuntimeError(
                .tooManyRequests, "Rate Exceeded. \(configuration.maximumPendingEvents) asynchronous invocations are already waiting.",
                reason: "ConcurrentInvocationLimitExceeded"
            )
        }
        let requestID = Self.newRequestID()
        if case .terminated = spawnContinuation.yield(SpawnRequest(environment: nil, event: (name, payload, trace, requestID))) {
            pendingEvents.withLock { $0 -= 1 }
            throw RuntimeError(.shuttingDown, "the runtime is shutting down")
        }
        return requestID
    }

    /// Takes an environment of `name` (warm, or the right to start one) for an invocation that answers as
    /// it goes (`invoke_with_response_stream`): the throttle is decided before the invoker hears 200.
    public func reserve(_ name: String, payloadBytes: Int) async throws(RuntimeError) -> Reservation {
        let (function, pool) = try target(name, payloadBytes: payloadBytes)
        guard let lease = await pool.leaseIfAvailable() else { throw RuntimeError.throttled(function) }
        return Reservation(function: function, pool: pool, lease: lease)
    }

    /// Invokes on a reserved environment; a streamed response's bytes go to `sink` as the function writes
    /// them (up to `maximumStreamingPayloadBytes`), and the result then carries an empty payload.
    public func invoke(
        _ reservation: Reservation, payload: ByteBuffer, clientContext: String? = nil, trace: XRayTraceID = .begin(), sink: ResponseStreamSink
    ) async throws(RuntimeError) -> InvocationResult {
        try await invokeRecorded(
            reservation.function, pool: reservation.pool, lease: reservation.take(), payload: payload, clientContext: clientContext,
            trace: trace, throttle: false, sink: sink, requestID: Self.newRequestID()
        )
    }

    private func target(_ name: String, payloadBytes: Int) throws(RuntimeError) -> (FunctionConfiguration, EnvironmentPool) {
        guard let function = registry.function(named: name), let pool = pools[name] else {
            throw RuntimeError.functionNotFound(name)
        }
        guard payloadBytes <= function.maximumPayloadBytes else {
            throw RuntimeError(.requestTooLarge, "Request must be smaller than \(function.maximumPayloadBytes) bytes for the InvokeFunction operation")
        }
        return (function, pool)
    }

    private func invoke(
        _ name: String, payload: ByteBuffer, clientContext: String?, trace: XRayTraceID, throttle: Bool, requestID: String = newRequestID()
    ) async throws(RuntimeError) -> InvocationResult {
        let (function, pool) = try target(name, payloadBytes: payload.readableBytes)
        return try await invokeRecorded(
            function, pool: pool, lease: nil, payload: payload, clientContext: clientContext, trace: trace, throttle: throttle, sink: nil,
            requestID: requestID)
    }

    /// A request id as Lambda makes them: a lowercase UUID.
    static func newRequestID() -> String { UUID().uuidString.lowercased() }

    /// Every invocation goes through here: the inspector's log hears it begin and end, however it ends.
    private func invokeRecorded(
        _ function: FunctionConfiguration, pool: EnvironmentPool, lease reserved: EnvironmentPool.Lease?, payload: ByteBuffer,
        clientContext: String?, trace: XRayTraceID, throttle: Bool, sink: ResponseStreamSink?, requestID: String
    ) async throws(RuntimeError) -> InvocationResult {
        invocations.began(requestID: requestID, function: function, payload: payload)
        do {
            let result = try await invoke(
                function, pool: pool, lease: reserved, payload: payload, clientContext: clientContext, trace: trace, throttle: throttle, sink: sink,
                requestID: requestID)
            invocations.ended(result)
            return result
        } catch {
            invocations.refused(requestID: requestID, error)
            throw error
        }
    }

    private func invoke(
        _ function: FunctionConfiguration, pool: EnvironmentPool, lease reserved: EnvironmentPool.Lease?, payload: ByteBuffer,
        clientContext: String?, trace: XRayTraceID, throttle: Bool, sink: ResponseStreamSink?, requestID: String
    ) async throws(RuntimeError) -> InvocationResult {
        let name = function.name
        var reserved = reserved
        let commandLine: [String]
        do {
            commandLine = try await builder.commandLine(for: function)
        } catch {
            if let reserved { await pool.release(reserved) }
            throw error
        }
        while true {
            // A cancelled caller starts nothing more (an environment that died before taking the event sends
            // the loop round again).
            if Task.isCancelled {
                if let reserved { await pool.release(reserved) }
                throw RuntimeError(.cancelled, "the invocation was cancelled before it started")
            }
            let lease: EnvironmentPool.Lease
            if let first = reserved {
                lease = first
                reserved = nil
            } else if throttle {
                guard let available = await pool.leaseIfAvailable() else {
                    throw RuntimeError.throttled(function)
                }
                lease = available
            } else {
                guard let leased = await pool.lease() else {
                    throw RuntimeError(.cancelled, "the invocation was cancelled while waiting for an environment")
                }
                lease = leased
            }
            var initDuration: Duration?
            let environment: ExecutionEnvironment
            switch lease {
            case .warm(let warm):
                environment = warm
            case .slot:
                let number = counter.add(1, ordering: .relaxed).newValue
                let generation = await pool.generation
                environment = ExecutionEnvironment(id: "\(name)-\(number)", function: function, generation: generation, logger: logger)
                live.withLock { $0[environment.id] = environment }
                if case .terminated = spawnContinuation.yield(SpawnRequest(environment: environment, commandLine: commandLine)) {
                    environment.terminate(signal: SIGKILL)
                }
                switch await environment.waitUntilReady() {
                case .success(let duration):
                    initDuration = duration
                case .failure(let failure):
                    await pool.discard()
                    if Task.isCancelled {
                        // A caller cancelled during the cold start takes its environment with it.
                        environment.terminate(signal: SIGKILL)
                        return InvocationResult(
                            status: .cancelled, payload: failure.payload, errorType: "Runtime.Cancelled", requestID: requestID,
                            duration: .zero, initDuration: nil, maxMemoryUsedMB: nil
                        )
                    }
                    logger.error("\(name): init failed: \(LambdaErrorPayload.message(in: failure.payload) ?? failure.errorType)")
                    return InvocationResult(
                        status: .environmentFailure, payload: failure.payload, errorType: failure.errorType, requestID: requestID,
                        duration: .zero, initDuration: nil, maxMemoryUsedMB: nil
                    )
                }
            }
            if !environment.isAlive {
                await pool.discard()
                continue
            }
            if let result = await run(
                requestID: requestID, payload: payload, clientContext: clientContext, trace: trace, sink: sink, on: environment, pool: pool,
                initDuration: initDuration
            ) {
                return result
            }
            // The environment died between invocations, before taking this one: start another.
        }
    }

    private func run(
        requestID: String, payload: ByteBuffer, clientContext: String?, trace: XRayTraceID, sink: ResponseStreamSink?,
        on environment: ExecutionEnvironment,
        pool: EnvironmentPool, initDuration: Duration?
    ) async -> InvocationResult? {
        let function = environment.function
        let timeout = Duration.milliseconds(Int64(function.timeout * 1000))
        let deadline = Int64(Date().timeIntervalSince1970 * 1000) + Int64(function.timeout * 1000)
        let assignment = ExecutionEnvironment.Assignment(
            requestID: requestID, payload: payload, deadlineMilliseconds: deadline,
            traceID: trace.description,
            clientContext: clientContext, sink: sink
        )
        let started = ContinuousClock.now
        let completion = await environment.invoke(assignment, timeout: timeout)
        if case .undelivered = completion {
            await pool.giveBack(environment)
            return nil
        }
        let duration = ContinuousClock.now - started
        let platform = PlatformLog(function: function)
        let start = platform.start(requestID: requestID, at: Date(timeIntervalSinceNow: -duration.inSeconds))
        if let start { logger.info("\(start)", metadata: ["function": "\(function.name)"]) }
        let memory = environment.peakMemoryMB()
        var result = InvocationResult(
            status: .success, payload: ByteBuffer(), errorType: nil, requestID: requestID, duration: duration,
            initDuration: initDuration, maxMemoryUsedMB: memory
        )
        switch completion {
        case .response(let body):
            result.payload = body
        case .error(let type, let body):
            result.status = .functionError
            // The header often says only `Unhandled`; the body names the error (`ValueError`).
            result.errorType = LambdaErrorPayload.type(in: body) ?? type
            result.payload = body
        case .timedOut:
            result.status = .timedOut
            result.errorType = "Sandbox.Timedout"
            let stamp = ISO8601DateFormatter().string(from: Date())
            result.payload = LambdaErrorPayload.make(
                type: nil, message: "\(stamp) \(requestID) Task timed out after \(String(format: "%.2f", function.timeout)) seconds"
            )
        case .undelivered:
            return nil
        case .cancelled:
            result.status = .cancelled
            result.errorType = "Runtime.Cancelled"
            result.payload = LambdaErrorPayload.make(type: "Runtime.Cancelled", message: "RequestId: \(requestID) the invocation was cancelled")
        case .outOfMemory:
            result.status = .environmentFailure
            result.errorType = "Runtime.OutOfMemory"
            result.maxMemoryUsedMB = function.memorySize
            result.payload = LambdaErrorPayload.make(
                type: "Runtime.OutOfMemory", message: "RequestId: \(requestID) Error: Runtime exited with error: signal: killed"
            )
        case .exited(let exit):
            result.status = .environmentFailure
            result.errorType = "Runtime.ExitError"
            result.payload = LambdaErrorPayload.make(
                type: "Runtime.ExitError", message: "RequestId: \(requestID) Error: Runtime exited with error: \(exit)"
            )
        }
        // The lines the function wrote just before it reported are read from its pipe on another thread:
        // they belong between START and END, so the reader is let catch up first.
        await environment.catchUpWithOutput(within: .seconds(2))
        let now = Date()
        let end = platform.end(result, at: now)
        let report = platform.report(result, at: now)
        for line in [end, report].compactMap({ $0 }) { logger.info("\(line)", metadata: ["function": "\(function.name)"]) }
        let output = environment.takeLog()
        result.log = ([start].compactMap { $0 } + output + [end, report].compactMap { $0 }).joined(separator: "\n") + "\n"
        await pool.giveBack(environment)
        return result
    }


    /// The environment variables Lambda sets, plus `PATH`/`HOME`/`LANG` from this process and the function's own.
    func lambdaEnvironment(for function: FunctionConfiguration) -> [String: String] {
        let inherited = ProcessInfo.processInfo.environment
        var variables: [String: String] = [:]
        for key in ["PATH", "HOME", "LANG", "TMPDIR", "LD_LIBRARY_PATH"] { variables[key] = inherited[key] }
        variables["AWS_LAMBDA_FUNCTION_NAME"] = function.name
        variables["AWS_LAMBDA_FUNCTION_VERSION"] = "$LATEST"
        variables["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = String(function.memorySize)
        variables["AWS_LAMBDA_LOG_GROUP_NAME"] = "/aws/lambda/\(function.name)"
        variables["AWS_LAMBDA_LOG_STREAM_NAME"] = "local/[$LATEST]\(RandomToken.make())"
        variables["AWS_LAMBDA_INITIALIZATION_TYPE"] = "on-demand"
        variables["AWS_REGION"] = RuntimeConfiguration.region
        variables["AWS_DEFAULT_REGION"] = RuntimeConfiguration.region
        variables["AWS_EXECUTION_ENV"] = "AWS_Lambda_\(function.runtime)"
        variables["_HANDLER"] = function.handler
        variables["LAMBDA_TASK_ROOT"] = function.directory?.path ?? FileManager.default.currentDirectoryPath
        variables["LAMBDA_RUNTIME_DIR"] = function.directory?.path ?? FileManager.default.currentDirectoryPath
        variables["TZ"] = ":UTC"
        // Not Lambda's: lets FunctionKit tell that its runtime died even while it was being started.
        variables["CHUNKRELAY_RUNTIME_PID"] = String(getpid())
        // Lambda sets the format always and the application level only with JSON.
        variables["AWS_LAMBDA_LOG_FORMAT"] = (function.loggingConfig?.logFormat ?? .text).rawValue
        if function.loggingConfig?.logFormat == .json {
            variables["AWS_LAMBDA_LOG_LEVEL"] = (function.loggingConfig?.applicationLogLevel ?? .info).rawValue
        }
        for (key, value) in function.environment { variables[key] = value }
        // The chunk module is importable by every Python and Node.js function (`import chunkrelay`,
        // `require("chunkrelay")`), after anything the function's own path puts first.
        let support: (key: String, folder: URL)? =
            function.runtime.hasPrefix("python") ? ("PYTHONPATH", RuntimeSupport.python)
            : function.runtime.hasPrefix("nodejs") ? ("NODE_PATH", RuntimeSupport.node) : nil
        if let support {
            variables[support.key] = ([variables[support.key]].compactMap { $0 } + [support.folder.path]).joined(separator: ":")
        }
        return variables
    }
}

extension RuntimeConfiguration {
    /// The ARN of a function in this emulator's region and account.
    static func arn(_ name: String) -> String { "arn:aws:lambda:\(region):\(account):function:\(name)" }
}
