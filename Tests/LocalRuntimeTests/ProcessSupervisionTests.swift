import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import Synchronization
import TestSupport
import Testing

@testable import LocalRuntime

/// Function processes under swift-subprocess: output split into bounded lines, exits and kills seen,
/// and the Invoke API's bound on waiting `Event` invocations.
@Suite(.timeLimit(.minutes(2))) struct ProcessSupervisionTests {
    @Test func outputIsSplitIntoLinesAndAnOverlongLineIsCutNotKept() {
        var splitter = LineSplitter(limit: 8)
        var lines: [String] = []
        let input = Array("short\r\nexactly8\n0123456789abcdef-and-more\nafter\nlast".utf8)
        // Fed in awkward pieces, as a pipe delivers them.
        for piece in stride(from: 0, to: input.count, by: 3) {
            input[piece..<min(piece + 3, input.count)].withUnsafeBytes { splitter.append($0) { lines.append($0) } }
        }
        splitter.finish { lines.append($0) }
        #expect(lines == ["short", "exactly8", "01234567 [line cut: longer than 8 bytes]", "after", "last"])
    }

    @Test func theRuntimesSyncMarkersAreTakenOutWhereverTheyLandAndNothingElseIs() {
        var splitter = LineSplitter(limit: 64)
        var lines: [String] = []
        var markers: [UInt64] = []
        // A marker between lines, one inside a line the function had not finished, NULs that only begin
        // like one, and a marker cut across every possible pipe read.
        let input = Array("before\n".utf8) + LineSplitter.marker(7) + Array("half".utf8) + LineSplitter.marker(8)
            + Array(" line\n".utf8) + [0] + Array("chunkrelay-syn\n".utf8) + [0] + Array("chunkrelay-sync:\n".utf8)
            + [0, 0] + Array("chunkrelay-sync:12x\n".utf8) + LineSplitter.marker(18_446_744_073) + Array("after".utf8) + [0]
        for size in 1...input.count {
            lines = []
            markers = []
            for piece in stride(from: 0, to: input.count, by: size) {
                input[piece..<min(piece + size, input.count)].withUnsafeBytes { splitter.append($0, emit: { lines.append($0) }, marker: { markers.append($0) }) }
            }
            splitter.finish { lines.append($0) }
            #expect(markers == [7, 8, 18_446_744_073], "read \(size) bytes at a time")
            #expect(
                lines == ["before", "half line", "\u{0}chunkrelay-syn", "\u{0}chunkrelay-sync:", "\u{0}\u{0}chunkrelay-sync:12x", "after\u{0}"],
                "read \(size) bytes at a time")
        }
    }

    @Test func catchingUpWithTheOutputReadsEverythingWrittenBeforeAndWritesNowhereElse() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("fp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let lines = Locked<[String]>([])
        let process = FunctionProcess()
        // Far more than a pipe holds, then a sign that it was all written; then the same process points its
        // output at a file, and catching up must not write into that file.
        let script = """
            exec 3<>go; i=0; while [ $i -lt 20000 ]; do echo "line $i of the first part"; i=$((i+1)); done
            touch written; read _ <&3; exec > redirected 2>&1; echo elsewhere; touch moved; read _ <&3
            """
        #expect(mkfifo(folder.appendingPathComponent("go").path, 0o600) == 0)
        let run = Task {
            try await process.run(commandLine: ["/bin/sh", "-c", script], directory: folder, environment: ["PATH": "/usr/bin:/bin"], logger: Logger(label: "test")) {
                line in lines.update { $0.append(line) }
            }
        }
        try await eventually("the first part to be written", within: .seconds(60)) { FileManager.default.fileExists(atPath: folder.appendingPathComponent("written").path) }
        await process.catchUpWithOutput(within: .seconds(30))
        #expect(lines.value.count == 20000, "every line written before is read")
        #expect(lines.value.last == "line 19999 of the first part")
        #expect(!lines.value.contains { $0.contains("chunkrelay-sync") })

        let go = open(folder.appendingPathComponent("go").path, O_WRONLY)
        #expect(write(go, "\n", 1) == 1)
        try await eventually("the output to be pointed at a file", within: .seconds(60)) { FileManager.default.fileExists(atPath: folder.appendingPathComponent("moved").path) }
        let started = ContinuousClock.now
        await process.catchUpWithOutput(within: .seconds(30))
        #expect(ContinuousClock.now - started < .seconds(30), "no marker to wait for: it returns at once")
        #expect(try String(contentsOf: folder.appendingPathComponent("redirected"), encoding: .utf8) == "elsewhere\n")
        #expect(write(go, "\n", 1) == 1)
        close(go)
        #expect(try await run.value == .status(0))
        // Gone: nothing to catch up with, and no wait.
        await process.catchUpWithOutput(within: .seconds(30))
    }

    @Test func aProcessRunsItsLinesAreReadAndItsExitIsReported() async throws {
        let lines = Locked<[String]>([])
        let process = FunctionProcess()
        let exit = try await process.run(
            commandLine: ["/bin/sh", "-c", "echo one; echo two >&2; printf tail; exit 7"], directory: nil, environment: ["PATH": "/usr/bin:/bin"],
            logger: Logger(label: "test")
        ) { line in lines.update { $0.append(line) } }
        #expect(exit == .status(7))
        #expect(lines.value.sorted() == ["one", "tail", "two"])
        #expect(process.hasExited)
    }

    @Test func aRelativeProgramRunsFromTheFunctionsFolder() async throws {
        // As `function.json` names them: `.venv/bin/python`, relative to the function's folder.
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("fp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("bin"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let script = folder.appendingPathComponent("bin/hello")
        try "#!/bin/sh\necho \"hello from $(pwd)\"\n".write(to: script, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script.path)
        let lines = Locked<[String]>([])
        let exit = try await FunctionProcess().run(commandLine: ["bin/hello"], directory: folder, environment: [:], logger: Logger(label: "test")) { line in
            lines.update { $0.append(line) }
        }
        #expect(exit == .status(0))
        #expect(lines.value == ["hello from \(folder.resolvingSymlinksInPath().path)"] || lines.value == ["hello from \(folder.path)"])
    }

    @Test func aSignalSentBeforeTheProcessStartsKillsItWhenItDoes() async throws {
        let process = FunctionProcess()
        process.signal(SIGKILL)
        let exit = try await process.run(commandLine: ["/bin/sleep", "30"], directory: nil, environment: [:], logger: Logger(label: "test"))
        #expect(exit == .signal(SIGKILL))
    }

    @Test func cancellingTheRunKillsTheProcess() async throws {
        let process = FunctionProcess()
        let task = Task { try await process.run(commandLine: ["/bin/sleep", "30"], directory: nil, environment: [:], logger: Logger(label: "test")) }
        try await eventually("the process to start") { process.pid != nil }
        let pid = try #require(process.pid)
        task.cancel()
        // A bound against hanging, not a timing claim: on a loaded 2-core machine the waiting task itself
        // may wait seconds for a thread.
        let exit = try await withDeadline(.seconds(60), "the cancelled process to end") { try await task.value }
        #expect(exit == .signal(SIGKILL))
        #expect(kill(pid, 0) == -1, "the process is gone (and reaped)")
    }

    @Test func anInvocationCancelledAtAnyMomentOfItsColdStartStopsItsProcess() async throws {
        try await RuntimeHarness.run([RuntimeHarness.chaos(concurrency: 1)]) { runtime, _ in
            // From "not spawned yet" through "starting" to "running the event": a cancel before the function
            // took the event used to be lost, and the invocation then ran to its end.
            // Most cancels land while the environment starts (tens of milliseconds in a debug build).
            for delay in [0, 1, 2, 80, 160] + (0..<40).map({ 3 + $0 }) {
                let task = Task { try await runtime.invoke("chaos", payload: ByteBuffer(string: #"{"mode":"sleep","seconds":30}"#)) }
                try await Task.sleep(for: .milliseconds(delay))
                task.cancel()
                do {
                    let result = try await withDeadline(.seconds(60), "the cancelled invocation (\(delay) ms) to end") { try await task.value }
                    #expect(result.status == .cancelled, "after \(delay) ms")
                } catch let error as RuntimeError {
                    #expect(error.code == .cancelled, "after \(delay) ms")
                }
                try await eventually("no environment left after a cancel at \(delay) ms", within: .seconds(30)) {
                    runtime.gauges["live_environments"] == 0
                }
            }
        }
    }

    @Test func aCommandThatCannotStartIsAnError() async throws {
        let process = FunctionProcess()
        let error = await #expect(throws: RuntimeError.self) {
            try await process.run(commandLine: ["/nonexistent/function"], directory: nil, environment: [:], logger: Logger(label: "test"))
        }
        #expect(error?.code == .startFailed)
        #expect(error?.message.contains("/nonexistent/function") == true)
    }

    @Test func waitingEventInvocationsAreBoundedWithAWSThrottle() async throws {
        var configuration = RuntimeConfiguration()
        configuration.maximumPendingEvents = 2
        try await RuntimeHarness.run([RuntimeHarness.chaos(concurrency: 1)], configuration: configuration) { runtime, url in
            let sleep = ByteBuffer(string: #"{"mode":"sleep","seconds":3}"#)
            try runtime.invokeAsync("chaos", payload: sleep)
            try runtime.invokeAsync("chaos", payload: sleep)
            #expect(runtime.gauges["pending_event_invocations"] == 2)
            #expect {
                try runtime.invokeAsync("chaos", payload: sleep)
            } throws: { error in
                let error = error as? RuntimeError
                return error?.code == .tooManyRequests && error?.reason == "ConcurrentInvocationLimitExceeded"
            }
            // Over HTTP, in AWS's shape.
            var request = HTTPClientRequest(url: "\(url)/2015-03-31/functions/chaos/invocations")
            request.method = .POST
            request.headers.add(name: "X-Amz-Invocation-Type", value: "Event")
            request.body = .bytes(sleep)
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
            #expect(response.status.code == 429)
            #expect(response.headers.first(name: "x-amzn-ErrorType") == "TooManyRequestsException")
            let body = try await response.body.collect(upTo: 1 << 16)
            let json = try #require(try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: String])
            #expect(json["Reason"] == "ConcurrentInvocationLimitExceeded")
            #expect(json["Type"] == "User")
            // Once they finish, the bound frees up. Two 3-second sleeps, one after the other, each with a cold
            // start: the bound is against hanging, not a timing claim (20 s ran out once with the whole
            // suite starting in parallel on 2 cores).
            try await eventually("the waiting invocations to finish", within: .seconds(90)) { runtime.gauges["pending_event_invocations"] == 0 }
            try runtime.invokeAsync("chaos", payload: ByteBuffer(string: #"{"mode":"echo"}"#))
        }
    }
}
