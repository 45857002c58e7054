import AsyncHTTPClient
import Foundation
import NIOCore
import Synchronization
import TestSupport
import Testing

@testable import LocalRuntime

@Suite(.serialized, .timeLimit(.minutes(5))) struct LocalRuntimeTests {
    /// A function's `build` step on a disk that fills (a real tmpfs; root, as CI runs).
    @Test(.enabled(if: SmallDisk.available)) func aBuildThatRunsOutOfSpaceFailsItsInvocationClearlyAndBuildsAgainOnceThereIsRoom() async throws {
        try await SmallDisk.with(megabytes: 2) { disk in
            let folder = disk.url.appendingPathComponent("big-build")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            var function = FunctionConfiguration(
                name: "big-build", command: [RuntimeConfiguration.ownBinDirectory.appendingPathComponent("chaos").path], timeout: 5, directory: folder)
            // Like `pip install` of a large package: more than the disk holds.
            function.build = [["sh", "-c", "head -c 4000000 /dev/zero > blob"]]
            try await RuntimeHarness.run([function]) { runtime, _ in
                await #expect {
                    _ = try await runtime.invoke("big-build", payload: ByteBuffer(string: #"{"mode":"echo"}"#))
                } throws: { error in
                    guard let error = error as? RuntimeError else { return false }
                    return error.code == .buildFailed && error.message.contains("ran out of disk space")
                }
                // Not taken for built: the marker was not left behind.
                #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent(".built").path))
                try disk.resize(megabytes: 16)
                let result = try await runtime.invoke("big-build", payload: ByteBuffer(string: #"{"mode":"echo","x":"1"}"#))
                #expect(result.json["function"] == "big-build")
                #expect(result.json["event"]?.contains(#""x":"1""#) == true)
                #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent(".built").path))
            }
        }
    }

    @Test func invokesAndReusesAWarmEnvironment() async throws {
        try await RuntimeHarness.run([RuntimeHarness.chaos()]) { runtime, _ in
            let cold = try await runtime.invoke("chaos", payload: ByteBuffer(string: #"{"mode":"echo"}"#))
            #expect(cold.status == .success)
            #expect(cold.initDuration != nil)
            #expect(cold.json["function"] == "chaos")
            #expect(cold.json["memory"] == "256")
            #expect(cold.json["requestId"] == cold.requestID)
            #expect(cold.json["arn"] == "arn:aws:lambda:us-east-1:000000000000:function:chaos")
            #expect(cold.json["event"] == #"{"mode":"echo"}"#)
            let warm = try await runtime.invoke("chaos", payload: ByteBuffer(string: "{}"))
            #expect(warm.status == .success)
            #expect(warm.initDuration == nil)
            #expect(warm.json["pid"] == cold.json["pid"])
            #expect(warm.requestID != cold.requestID)
            #expect(PlatformLog.reportLine(cold, memorySize: 256).contains("Init Duration:"))
            #expect(PlatformLog.reportLine(warm, memorySize: 256).hasPrefix("REPORT RequestId: \(warm.requestID)\tDuration: "))
        }
    }

    @Test func aTimeoutKillsTheEnvironmentWithLambdasMessage() async throws {
        try await RuntimeHarness.run([RuntimeHarness.chaos(timeout: 1)]) { runtime, _ in
            let first = try await runtime.invoke("chaos", payload: ByteBuffer(string: "{}"))
            // It would sleep far past the test's time limit: only the runtime's deadline ends it.
            let result = try await runtime.invoke("chaos", payload: ByteBuffer(string: #"{"mode":"sleep","seconds":3600}"#))
            #expect(result.status == .timedOut)
            #expect(result.errorMessage?.hasSuffix("\(result.requestID) Task timed out after 1.00 seconds") == true)
            let pid = try #require(first.json["pid"].flatMap { Int32($0) })
            // Killed (and reaped) promptly, not left running in the background.
            try await eventually("the timed-out process to be killed and reaped", within: .seconds(30)) { kill(pid, 0) != 0 }
            let next = try await runtime.invoke("chaos", payload: ByteBuffer(string: "{}"))
            #expect(next.status == .success)
            #expect(next.initDuration != nil, "a new environment (cold start) after the kill")
            #expect(next.json["pid"] != first.json["pid"])
        }
    }

    @Test func functionErrorsKeepTheEnvironmentWarm() async throws {
        try await RuntimeHarness.run([RuntimeHarness.chaos()]) { runtime, _ in
            let first = try await runtime.invoke("chaos", payload: ByteBuffer(string: "{}"))
            let failed = try await runtime.invoke("chaos", payload: ByteBuffer(string: #"{"mode":"error"}"#))
            #expect(failed.status == .functionError)
            #expect(failed.errorType == "Chaos.Error")
            #expect(failed.errorMessage == "failing as asked")
            let after = try await runtime.invoke("chaos", payload: ByteBuffer(string: "{}"))
            #expect(after.json["pid"] == first.json["pid"])
        }
    }

    @Test func aCrashIsARuntimeExitError() async throws {
        try await RuntimeHarness.run([RuntimeHarness.chaos()]) { runtime, _ in
            let crashed = try await runtime.invoke("chaos", payload: ByteBuffer(string: #"{"mode":"crash"}"#))
            #expect(crashed.status == .environmentFailure)
            #expect(crashed.errorType == "Runtime.ExitError")
            #expect(crashed.errorMessage == "RequestId: \(crashed.requestID) Error: Runtime exited with error: exit status 3")
            let next = try await runtime.invoke("chaos", payload: ByteBuffer(string: "{}"))
            #expect(next.status == .success)
        }
    }

    @Test func anInitErrorIsReported() async throws {
        try await RuntimeHarness.run([RuntimeHarness.chaos(environment: ["CHAOS_INIT_ERROR": "1"])]) { runtime, _ in
            let result = try await runtime.invoke("chaos", payload: ByteBuffer(string: "{}"))
            #expect(result.status == .environmentFailure)
            #expect(result.errorType == "Chaos.InitError")
            #expect(result.errorMessage == "failing in init as configured")
        }
    }

    @Test func anOversizedResponseIsRefusedWithLambdasError() async throws {
        try await RuntimeHarness.run([RuntimeHarness.chaos()]) { runtime, _ in
            let result = try await runtime.invoke("chaos", payload: ByteBuffer(string: #"{"mode":"oversize","bytes":6291557}"#))
            #expect(result.status == .functionError)
            #expect(result.errorType == "Function.ResponseSizeTooLarge")
            // One byte under the limit is fine.
            let fits = try await runtime.invoke("chaos", payload: ByteBuffer(string: #"{"mode":"oversize","bytes":6291556}"#))
            #expect(fits.status == .success)
            #expect(fits.payload.readableBytes == 6_291_556)
        }
    }

    /// What chaos's `stream` mode writes: piece `i` is `bytes` of the pattern seeded with `i`.
    @Test func streamedResponsesReachTheInvokerAsTheFunctionWritesThem() async throws {
        try await RuntimeHarness.run([RuntimeHarness.chaos(concurrency: 1)]) { runtime, _ in
            // A buffered invoke of a function that streams gets the whole response, as on Lambda.
            let buffered = try await runtime.invoke("chaos", payload: ByteBuffer(string: #"{"mode":"stream","chunks":3,"bytes":1000}"#))
            #expect(buffered.status == .success, "\(buffered.text)")
            #expect(Array(buffered.payload.readableBytesView) == ChaosPattern.streamed(chunks: 3, bytes: 1000))

            let pieces = Locked<[(ContinuousClock.Instant, ByteBuffer)]>([])
            let reservation = try await runtime.reserve("chaos", payloadBytes: 64)
            // The only environment is claimed: a synchronous invoke is throttled meanwhile.
            await #expect { _ = try await runtime.invokeOrThrottle("chaos", payload: ByteBuffer(string: "{}")) } throws: { ($0 as? RuntimeError)?.code == .tooManyRequests }
            // The function writes its first piece and then waits until the test has received it (the gate
            // file): only a response streamed as it is written gets past that, a buffered one times out.
            let gate = FileManager.default.temporaryDirectory.appendingPathComponent("gate-\(UUID().uuidString)").path
            defer { try? FileManager.default.removeItem(atPath: gate) }
            let result = try await runtime.invoke(
                reservation, payload: ByteBuffer(string: #"{"mode":"stream","chunks":4,"bytes":50000,"gate":"\#(gate)"}"#),
                sink: ResponseStreamSink { piece in
                    pieces.update { $0.append((ContinuousClock.now, piece)) }
                    _ = FileManager.default.createFile(atPath: gate, contents: nil)
                }
            )
            #expect(result.status == .success, "the first piece arrived while the function was still writing: \(result.text)")
            #expect(result.payload.readableBytes == 0, "streamed bytes are not also buffered")
            let received = pieces.value
            #expect(received.flatMap { Array($0.1.readableBytesView) } == ChaosPattern.streamed(chunks: 4, bytes: 50000))
            #expect(result.log.contains("REPORT RequestId: \(result.requestID)"))
        }
    }

    @Test func aStreamedResponseThatFailsReportsTheErrorFromItsTrailers() async throws {
        try await RuntimeHarness.run([RuntimeHarness.chaos(concurrency: 1)]) { runtime, _ in
            let received = Locked(0)
            let reservation = try await runtime.reserve("chaos", payloadBytes: 64)
            let failed = try await runtime.invoke(
                reservation, payload: ByteBuffer(string: #"{"mode":"stream","chunks":4,"bytes":1000,"failAfterChunks":2}"#),
                sink: ResponseStreamSink { piece in received.update { $0 += piece.readableBytes } }
            )
            #expect(failed.status == .functionError)
            #expect(failed.errorType == "Chaos.StreamError")
            #expect(failed.errorMessage == "failing after 2 chunks as asked")
            #expect(received.value == 2000, "what was written before the error still reached the invoker")
            // A buffered invoke of the same failure is a plain function error.
            let pid = try await runtime.invoke("chaos", payload: ByteBuffer(string: "{}")).json["pid"]
            let bufferedFailure = try await runtime.invoke("chaos", payload: ByteBuffer(string: #"{"mode":"stream","failAfterChunks":0}"#))
            #expect(bufferedFailure.errorType == "Chaos.StreamError")
            #expect(try await runtime.invoke("chaos", payload: ByteBuffer(string: "{}")).json["pid"] == pid, "the environment stays warm")
        }
    }

    /// AWS's streaming bandwidth, opt-in: a 20 MiB streamed response takes at least 7 s (6 MB at full
    /// speed, the remaining 14.97 MB at 2 MB/s, 7.49 s); without it, the same stream is not held back.
    @Test func aStreamedResponseOverSixMegabytesGoesAtLambdasBandwidthWhenAskedFor() async throws {
        var paced = RuntimeHarness.chaos(name: "paced", timeout: 30, concurrency: 1)
        paced.awsStreamingBandwidth = true
        let free = RuntimeHarness.chaos(name: "free", timeout: 30, concurrency: 1)
        try await RuntimeHarness.run([paced, free]) { runtime, _ in
            func stream(_ name: String) async throws -> (bytes: Int, took: Duration, firstSixMB: Duration) {
                let received = Locked((bytes: 0, burst: Duration.zero))
                let started = ContinuousClock.now
                let result = try await runtime.invoke(
                    try await runtime.reserve(name, payloadBytes: 64),
                    payload: ByteBuffer(string: #"{"mode":"stream","chunks":20,"bytes":1048576}"#),
                    sink: ResponseStreamSink { piece in
                        received.update {
                            $0.bytes += piece.readableBytes
                            if $0.bytes <= 6_000_000 { $0.burst = ContinuousClock.now - started }
                        }
                    })
                #expect(result.status == .success)
                return (received.value.bytes, ContinuousClock.now - started, received.value.burst)
            }
            let throttled = try await stream("paced")
            #expect(throttled.bytes == 20 << 20)
            #expect(throttled.took >= .seconds(7.4), "took \(throttled.took)")
            let unthrottled = try await stream("free")
            #expect(unthrottled.bytes == 20 << 20)
            #expect(unthrottled.took < .seconds(7), "took \(unthrottled.took)")
            // Paced from the first byte, the first 6 MB would take 3 s; unpaced, about what the whole free stream
            // took on this machine at this moment.
            #expect(
                throttled.firstSixMB < max(unthrottled.took, .seconds(1)) + .seconds(1),
                "the first 6 MB are not held back (\(throttled.firstSixMB); the free stream took \(unthrottled.took))")
        }
    }

    @Test func streamedResponsesHaveTheirOwnSizeLimit() async throws {
        var small = RuntimeHarness.chaos(name: "small", concurrency: 1)
        small.maximumStreamingPayloadBytes = 100_000
        small.maximumPayloadBytes = 10_000
        try await RuntimeHarness.run([small]) { runtime, _ in
            let received = Locked(0)
            let over = try await runtime.invoke(
                try await runtime.reserve("small", payloadBytes: 64),
                payload: ByteBuffer(string: #"{"mode":"stream","chunks":3,"bytes":40000}"#),
                sink: ResponseStreamSink { piece in received.update { $0 += piece.readableBytes } }
            )
            #expect(over.errorType == "Function.ResponseSizeTooLarge")
            #expect(over.errorMessage?.contains("(100000 bytes)") == true)
            #expect(received.value <= 100_000)
            let fits = try await runtime.invoke(
                try await runtime.reserve("small", payloadBytes: 64),
                payload: ByteBuffer(string: #"{"mode":"stream","chunks":2,"bytes":40000}"#), sink: ResponseStreamSink { _ in }
            )
            #expect(fits.status == .success)
            // Invoked buffered, the same stream is held to the buffered limit.
            let buffered = try await runtime.invoke("small", payload: ByteBuffer(string: #"{"mode":"stream","chunks":2,"bytes":40000}"#))
            #expect(buffered.errorType == "Function.ResponseSizeTooLarge")
            #expect(buffered.errorMessage?.contains("(10000 bytes)") == true)
        }
    }

    @Test func anUnusedReservationGivesItsEnvironmentBack() async throws {
        try await RuntimeHarness.run([RuntimeHarness.chaos(concurrency: 1)]) { runtime, _ in
            do {
                _ = try await runtime.reserve("chaos", payloadBytes: 2)
            }
            // Released from the reservation's deinit, on another task: give it a moment.
            var result: InvocationResult?
            let deadline = ContinuousClock.now + .seconds(5)
            while result == nil, ContinuousClock.now < deadline {
                result = try? await runtime.invokeOrThrottle("chaos", payload: ByteBuffer(string: "{}"))
                if result == nil { try await Task.sleep(for: .milliseconds(20)) }
            }
            #expect(result?.status == .success)
        }
    }

    @Test func goingOverTheMemorySizeIsRuntimeOutOfMemory() async throws {
        try await RuntimeHarness.run([RuntimeHarness.chaos()]) { runtime, _ in
            // chaos runs with 256 MB here.
            let fits = try await runtime.invoke("chaos", payload: ByteBuffer(string: #"{"mode":"allocate","bytes":64,"seconds":0.2}"#))
            #expect(fits.status == .success, "\(fits.text)")
            // It would hold the memory until its 5 s timeout: ending as out of memory, not timed out, means
            // it was killed when it went over, not at the end.
            let result = try await runtime.invoke("chaos", payload: ByteBuffer(string: #"{"mode":"allocate","bytes":400,"seconds":3600}"#))
            #expect(result.status == .environmentFailure)
            #expect(result.errorType == "Runtime.OutOfMemory")
            #expect(result.errorMessage == "RequestId: \(result.requestID) Error: Runtime exited with error: signal: killed")
            #expect(PlatformLog.reportLine(result, memorySize: 256).contains("Max Memory Used: 256 MB"))
        }
    }

    @Test func payloadLimitsAreConfigurablePerFunction() async throws {
        var small = RuntimeHarness.chaos(name: "small")
        small.maximumPayloadBytes = 1 << 20
        small.maximumEventBytes = 256 << 10
        try await RuntimeHarness.run([small]) { runtime, _ in
            let response = try await runtime.invoke("small", payload: ByteBuffer(string: #"{"mode":"oversize","bytes":1048577}"#))
            #expect(response.errorType == "Function.ResponseSizeTooLarge")
            #expect(response.errorMessage?.contains("(1048576 bytes)") == true)
            #expect { try runtime.invokeAsync("small", payload: ByteBuffer(repeating: 0x20, count: (256 << 10) + 1)) } throws: { ($0 as? RuntimeError)?.code == .requestTooLarge }
            try runtime.invokeAsync("small", payload: ByteBuffer(string: #"{"mode":"echo"}"#))
            await #expect {
                _ = try await runtime.invoke("small", payload: ByteBuffer(repeating: 0x20, count: (1 << 20) + 1))
            } throws: { ($0 as? RuntimeError)?.code == .requestTooLarge }
        }
        #expect { try FunctionRegistry([FunctionConfiguration(name: "f", swiftProduct: "x", maximumEventBytes: 2 << 20)]) } throws: { ($0 as? RuntimeError)?.code == .invalidConfiguration }
    }

    @Test func theLogOfAnInvocationIsFramedLikeLambdas() async throws {
        try await RuntimeHarness.run([RuntimeHarness.chaos()]) { runtime, _ in
            let result = try await runtime.invoke("chaos", payload: ByteBuffer(string: #"{"mode":"error"}"#))
            let lines = result.log.split(separator: "\n").map(String.init)
            #expect(lines.first == "START RequestId: \(result.requestID) Version: $LATEST")
            #expect(lines.contains { $0.contains("invocation failed") }, "the function's own output is in between: \(lines)")
            #expect(lines.dropLast().last == "END RequestId: \(result.requestID)")
            #expect(lines.last?.hasPrefix("REPORT RequestId: \(result.requestID)\tDuration: ") == true)
        }
    }

    @Test func idleEnvironmentsAreShutDown() async throws {
        var configuration = RuntimeConfiguration()
        configuration.idleTimeout = .milliseconds(300)
        try await RuntimeHarness.run([RuntimeHarness.chaos()], configuration: configuration) { runtime, _ in
            let first = try await runtime.invoke("chaos", payload: ByteBuffer(string: "{}"))
            let pid = try #require(first.json["pid"].flatMap { Int32($0) })
            try await eventually("the idle environment's process to be stopped", within: .seconds(30)) { kill(pid, 0) != 0 }
            let next = try await runtime.invoke("chaos", payload: ByteBuffer(string: "{}"))
            #expect(next.initDuration != nil, "a cold start after the idle shutdown")
        }
    }

    @Test func environmentsRunInParallelUpToTheLimitThenThrottle() async throws {
        try await RuntimeHarness.run([RuntimeHarness.chaos(concurrency: 2)]) { runtime, _ in
            async let a = runtime.invoke("chaos", payload: ByteBuffer(string: #"{"mode":"sleep","seconds":2}"#))
            async let b = runtime.invoke("chaos", payload: ByteBuffer(string: #"{"mode":"sleep","seconds":2}"#))
            // Both have their environment (started or starting): the limit is reached.
            try await eventually("both invocations to hold an environment") { runtime.gauges["live_environments"] == 2 }
            await #expect {
                _ = try await runtime.invokeOrThrottle("chaos", payload: ByteBuffer(string: "{}"))
            } throws: { ($0 as? RuntimeError)?.code == .tooManyRequests }
            let (first, second) = try await (a, b)
            #expect(first.status == .success && second.status == .success)
            // Both started cold: two environments, not one after the other.
            #expect(first.initDuration != nil && second.initDuration != nil)
        }
    }

    @Test func unknownFunctionsAndOversizedRequests() async throws {
        try await RuntimeHarness.run([RuntimeHarness.chaos()]) { runtime, _ in
            await #expect(throws: RuntimeError(.functionNotFound, "Function not found: arn:aws:lambda:us-east-1:000000000000:function:nope")) {
                _ = try await runtime.invoke("nope", payload: ByteBuffer())
            }
            await #expect {
                _ = try await runtime.invoke("chaos", payload: ByteBuffer(repeating: 0, count: (6 << 20) + 101))
            } throws: { ($0 as? RuntimeError)?.code == .requestTooLarge }
            // Exactly at the limit (6 MiB + 100 bytes) is accepted and runs.
            let head = #"{"mode":"sleep","seconds":0,"pad":""#
            let padded = head + String(repeating: " ", count: (6 << 20) + 100 - head.utf8.count - 2) + #""}"#
            #expect(padded.utf8.count == (6 << 20) + 100)
            let atLimit = try await runtime.invoke("chaos", payload: ByteBuffer(string: padded))
            #expect(atLimit.status == .success, "\(atLimit.errorType ?? "") \(atLimit.text.prefix(200))")
            #expect(atLimit.text == #"{"slept":0.0}"# || atLimit.text == #"{"slept":0}"#)
        }
    }
}

@Suite(.serialized, .timeLimit(.minutes(5))) struct InvokeAPITests {
    func post(_ url: String, type: String? = nil, body: ByteBuffer = ByteBuffer(string: "{}")) async throws -> (HTTPClientResponse, String) {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        if let type { request.headers.add(name: "X-Amz-Invocation-Type", value: type) }
        request.body = .bytes(body)
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        return (response, String(buffer: try await response.body.collect(upTo: 8 << 20)))
    }

    @Test func speaksTheLambdaInvokeAPI() async throws {
        try await RuntimeHarness.run([RuntimeHarness.chaos(timeout: 120)]) { runtime, url in
            let base = "\(url)/2015-03-31/functions"
            let (ok, body) = try await post("\(base)/chaos/invocations", body: ByteBuffer(string: #"{"mode":"echo"}"#))
            #expect(ok.status == .ok)
            #expect(ok.headers.first(name: "X-Amz-Executed-Version") == "$LATEST")
            #expect(body.contains(#""function":"chaos""#))

            let (failed, errorBody) = try await post("\(base)/chaos/invocations", body: ByteBuffer(string: #"{"mode":"error"}"#))
            #expect(failed.status == .ok)
            #expect(failed.headers.first(name: "X-Amz-Function-Error") == "Unhandled")
            #expect(errorBody.contains(#""errorType":"Chaos.Error""#))

            let (missing, missingBody) = try await post("\(base)/nope/invocations")
            #expect(missing.status == .notFound)
            #expect(missing.headers.first(name: "x-amzn-ErrorType") == "ResourceNotFoundException")
            #expect(missingBody.contains("Function not found: arn:aws:lambda:us-east-1:000000000000:function:nope"))

            let (dry, _) = try await post("\(base)/chaos/invocations", type: "DryRun")
            #expect(dry.status == .noContent)

            // The function sleeps far longer than a busy machine may take to answer 202; no clock is read.
            let (event, _) = try await post("\(base)/chaos/invocations", type: "Event", body: ByteBuffer(string: #"{"mode":"sleep","seconds":60}"#))
            #expect(event.status == .accepted)
            // Counted until it ends (after retries): still there when the 202 came.
            #expect(runtime.gauges["pending_event_invocations"] == 1, "Event returns before the function finishes")
            // The 202's request id is the one the invocation runs under.
            let eventID = try #require(event.headers.first(name: "x-amzn-RequestId"))
            try await eventually("the event's invocation to begin") { runtime.invocations.record(requestId: eventID) != nil }
            #expect(runtime.invocations.record(requestId: eventID)?.payload.contains(#""seconds":60"#) == true)

            var tail = HTTPClientRequest(url: "\(base)/chaos/invocations")
            tail.method = .POST
            tail.headers.add(name: "X-Amz-Log-Type", value: "Tail")
            tail.body = .bytes(ByteBuffer(string: "{}"))
            let tailed = try await HTTPClient.shared.execute(tail, timeout: .seconds(30))
            let log = String(decoding: Data(base64Encoded: tailed.headers.first(name: "X-Amz-Log-Result") ?? "") ?? Data(), as: UTF8.self)
            #expect(log.hasPrefix("START RequestId: "))
            #expect(log.contains("REPORT RequestId: "))

            let (big, bigBody) = try await post("\(base)/chaos/invocations", body: ByteBuffer(repeating: UInt8(ascii: "a"), count: (6 << 20) + 101))
            #expect(big.status.code == 413)
            #expect(big.headers.first(name: "x-amzn-ErrorType") == "RequestEntityTooLargeException")
            #expect(bigBody.contains("Request must be smaller than"))

            let (bigEvent, _) = try await post("\(base)/chaos/invocations", type: "Event", body: ByteBuffer(repeating: UInt8(ascii: "a"), count: (1 << 20) + 1))
            #expect(bigEvent.status.code == 413)
        }
    }
}

@Suite(.timeLimit(.minutes(5))) struct FunctionRegistryTests {
    @Test func loadsTheRepositoryFunctions() throws {
        let functions = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../functions").standardizedFileURL
        let registry = try FunctionRegistry(directory: functions)
        let map = try #require(registry.function(named: "map-render"))
        #expect(map.swiftProduct == "map-render")
        #expect(map.timeout > 3)
        #expect(map.directory?.lastPathComponent == "map-render")
        #expect(registry.function(named: "chaos") != nil)
    }

    @Test func rejectsInvalidConfigurations() throws {
        #expect { try FunctionRegistry([FunctionConfiguration(name: "a b", swiftProduct: "x")]) } throws: { ($0 as? RuntimeError)?.code == .invalidConfiguration }
        #expect { try FunctionRegistry([FunctionConfiguration(name: "f")]) } throws: { ($0 as? RuntimeError)?.code == .invalidConfiguration }
        #expect { try FunctionRegistry([FunctionConfiguration(name: "f", swiftProduct: "x", timeout: 901)]) } throws: { ($0 as? RuntimeError)?.code == .invalidConfiguration }
        #expect { try FunctionRegistry([FunctionConfiguration(name: "f", swiftProduct: "x", memorySize: 64)]) } throws: { ($0 as? RuntimeError)?.code == .invalidConfiguration }
        #expect { try FunctionRegistry([FunctionConfiguration(name: "f", swiftProduct: "x", maximumRetryAttempts: 3)]) } throws: { ($0 as? RuntimeError)?.code == .invalidConfiguration }

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fn-\(UUID().uuidString)/broken")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory.deletingLastPathComponent()) }
        try Data(#"{"swiftProduct": 3}"#.utf8).write(to: directory.appendingPathComponent("function.json"))
        #expect { try FunctionRegistry(directory: directory.deletingLastPathComponent()) } throws: { ($0 as? RuntimeError)?.code == .invalidConfiguration }
    }
}

@Suite(.serialized, .timeLimit(.minutes(5))) struct RetryTests {
    @Test func failedAsyncInvocationsAreRetriedAsLambdaDoes() async throws {
        var chaos = RuntimeHarness.chaos()
        chaos.maximumRetryAttempts = 2
        try await RuntimeHarness.run([chaos]) { runtime, _ in
            let attempts = Locked<[Int]>([])
            let failed = try await runtime.invokeRetrying("chaos", payload: ByteBuffer(string: #"{"mode":"error"}"#)) { result, attempt in
                #expect(result.errorType == "Chaos.Error")
                attempts.update { $0.append(attempt) }
                return ByteBuffer(string: #"{"mode":"error"}"#)
            }
            #expect(failed.status == .functionError)
            #expect(attempts.value == [2, 3])
            // All three ran under the event's one request id, as Lambda's retries do; each is in the log.
            let runs = runtime.invocations.recent().filter { $0.requestId == failed.requestID }
            #expect(runs.map(\.attempt) == [3, 2, 1])
            #expect(runs.allSatisfy { $0.status == "functionError" })
            for attempt in 1...3 {
                let log = runtime.invocations.record(requestId: failed.requestID, attempt: attempt)?.log ?? []
                #expect(log.first == "START RequestId: \(failed.requestID) Version: $LATEST", "attempt \(attempt): \(log)")
            }

            // The payload of a retry is the one the caller hands back: here the retry succeeds, and the
            // function sees the same request id the crashed attempt had.
            let crashed = Locked<String?>(nil)
            let recovered = try await runtime.invokeRetrying("chaos", payload: ByteBuffer(string: #"{"mode":"crash"}"#)) { result, _ in
                crashed.update { $0 = result.requestID }
                return ByteBuffer(string: #"{"mode":"echo"}"#)
            }
            #expect(recovered.status == .success)
            #expect(recovered.json["requestId"] == crashed.value)
            #expect(recovered.requestID == crashed.value)

            // A caller that declines stops the retries.
            let stopped = try await runtime.invokeRetrying("chaos", payload: ByteBuffer(string: #"{"mode":"error"}"#)) { _, _ in nil }
            #expect(stopped.status == .functionError)

            let once = Locked<[Int]>([])
            _ = try await runtime.invokeRetrying("chaos", payload: ByteBuffer(string: "{}")) { _, attempt in
                once.update { $0.append(attempt) }
                return nil
            }
            #expect(once.value.isEmpty, "a success is not retried")
        }
    }

    @Test func noRetriesWhenTheFunctionSaysZero() async throws {
        var chaos = RuntimeHarness.chaos()
        chaos.maximumRetryAttempts = 0
        try await RuntimeHarness.run([chaos]) { runtime, _ in
            let attempts = Locked<[Int]>([])
            let failed = try await runtime.invokeRetrying("chaos", payload: ByteBuffer(string: #"{"mode":"error"}"#)) { _, attempt in
                attempts.update { $0.append(attempt) }
                return ByteBuffer(string: #"{"mode":"error"}"#)
            }
            #expect(failed.status == .functionError)
            #expect(attempts.value.isEmpty)
        }
    }
}
