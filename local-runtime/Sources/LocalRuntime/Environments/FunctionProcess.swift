import Foundation
import Logging
import Subprocess
import Synchronization

#if canImport(System)
import System
#else
import SystemPackage
#endif

#if canImport(Glibc)
import Glibc
#endif

/// One execution environment's operating-system process, supervised with swift-subprocess.
///
/// swift-subprocess watches the exit through a pidfd and reads the pipe with its own epoll loop, so no
/// libdispatch source is torn down per process (Foundation's process class and its pipe readability callback
/// crashed the server after a few hundred process starts and stops, swift-corelibs-libdispatch #949). The process
/// lives exactly as long as `run(…)`: cancelling the calling task kills it.
final class FunctionProcess: Sendable {
    /// What happened to the process.
    enum Exit: Sendable, Equatable, CustomStringConvertible {
        case status(Int32)
        case signal(Int32)

        var description: String {
            switch self {
            case .status(let code): return "exit status \(code)"
            case .signal(let signal): return signal == SIGKILL ? "signal: killed" : "signal: \(signal)"
            }
        }
    }

    private enum Phase {
        /// Not spawned yet; a signal asked for meanwhile is sent as soon as it is.
        case notStarted(pendingSignal: Int32?)
        /// Spawned; signals go through the process descriptor.
        case running(pid: Int32, send: @Sendable (Int32) -> Void)
        /// Its output closed; it is reaped when it exits, so only the pid is left to signal.
        case outputClosed(pid: Int32)
        case exited
    }

    /// Longest output line kept; a function that prints without newlines must not grow the runtime's memory.
    static let maximumLineBytes = 16 << 10

    private let phase = Mutex(Phase.notStarted(pendingSignal: nil))

    /// Where reading the output stands, for `catchUpWithOutput(within:)`.
    private struct Reading {
        /// One caller's wait: until marker `marker` is read, or the output closes.
        struct Waiter {
            var ticket: UInt64
            var marker: UInt64
            var continuation: CheckedContinuation<Void, Never>
        }

        /// The output pipe (device, inode) as the process got it, so a marker goes nowhere else.
        var pipe: (device: UInt64, inode: UInt64)?
        var lastTicket: UInt64 = 0
        var markerRead: UInt64 = 0
        var closed = false
        var waiters: [Waiter] = []
        /// Tickets whose time ran out before their waiter came in.
        var expired: Set<UInt64> = []

        /// Takes the waiters that are done: their marker read, the output closed, or their time up.
        mutating func settled() -> [CheckedContinuation<Void, Never>] {
            let isDone: (Waiter) -> Bool = { [self] in closed || $0.marker <= markerRead || expired.contains($0.ticket) }
            let done = waiters.filter(isDone)
            waiters.removeAll(where: isDone)
            for waiter in done { expired.remove(waiter.ticket) }
            return done.map(\.continuation)
        }
    }

    private let reading = Mutex(Reading())

    init() {}

    /// Runs `commandLine` in `directory` with exactly `environment` until it exits, handing each line of its
    /// output (standard output and error together) to the log and `onLine`. Throws when it cannot start.
    func run(
        commandLine: [String], directory: URL?, environment: [String: String], logger: Logger,
        onLine: @escaping @Sendable (String) -> Void = { _ in }
    ) async throws -> Exit {
        let executable = Self.executable(commandLine[0], in: directory)
        var variables: [Environment.Key: String] = [:]
        for (key, value) in environment {
            if let key = Environment.Key(rawValue: key) { variables[key] = value }
        }
        do {
            // Cancelling the caller kills the process at once, from the cancelling task: swift-subprocess's own
            // teardown would too, but from a task it has yet to schedule, which a busy pool can delay.
            let result = try await withTaskCancellationHandler {
                try await Subprocess.run(
                    executable, arguments: Arguments(Array(commandLine.dropFirst())), environment: .custom(variables),
                    workingDirectory: directory.map { FilePath($0.path) }, input: .none, output: .sequence, error: .combinedWithOutput
                ) { execution in
                    let pid = execution.processIdentifier.value
                    let pending: Int32? = phase.withLock { phase in
                        guard case .notStarted(let pending) = phase else { return nil }
                        phase = .running(pid: pid) { signal in try? execution.send(signal: Signal(rawValue: signal)) }
                        return pending
                    }
                    if let pending { try? execution.send(signal: Signal(rawValue: pending)) }
                    let pipe = Self.pipeIdentity(path: "/proc/\(pid)/fd/1")
                    reading.withLock { $0.pipe = pipe }
                    var lines = LineSplitter(limit: Self.maximumLineBytes)
                    let emit: (String) -> Void = { line in
                        logger.info("\(line)")
                        onLine(line)
                    }
                    let marker: (UInt64) -> Void = { number in self.settle { $0.markerRead = max($0.markerRead, number) } }
                    do {
                        for try await buffer in execution.standardOutput {
                            buffer.withUnsafeBytes { lines.append($0, emit: emit, marker: marker) }
                        }
                    } catch {
                        // The read ends early only when the process is being torn down; what was read stays logged.
                    }
                    lines.finish(emit: emit)
                    phase.withLock { $0 = .outputClosed(pid: pid) }
                    outputClosed()
                }
            } onCancel: {
                self.signal(SIGKILL)
            }
            phase.withLock { $0 = .exited }
            outputClosed()
            switch result.terminationStatus {
            case .exited(let code): return .status(code)
            case .signaled(let signal): return .signal(signal)
            }
        } catch {
            outputClosed()
            let started = phase.withLock { phase -> Bool in
                defer { phase = .exited }
                if case .notStarted = phase { return false }
                return true
            }
            // A started process ends this way only when the calling task was cancelled: swift-subprocess killed it.
            if started { return .signal(SIGKILL) }
            throw RuntimeError(.startFailed, "cannot start \(commandLine[0]): \(error)")
        }
    }

    /// Waits until every line the process wrote before this call has been read and passed on (at most
    /// `timeout`): the runtime frames an invocation's log as soon as the function reports its outcome, and
    /// the lines it wrote just before are then often still in the pipe.
    ///
    /// A marker is written into the process's own output pipe (opened again through `/proc`); the pipe keeps
    /// order, so when the reader meets the marker it has read everything before it. A process that is gone
    /// has closed its end, and then the wait is for the reader to reach the end of the output.
    func catchUpWithOutput(within timeout: Duration) async {
        let taken: (ticket: UInt64, pipe: (device: UInt64, inode: UInt64))? = reading.withLock { reading in
            guard !reading.closed, let pipe = reading.pipe else { return nil }
            reading.lastTicket += 1
            return (reading.lastTicket, pipe)
        }
        guard let (ticket, pipe) = taken, let pid else { return }
        let marker: UInt64
        switch Self.writeMarker(ticket, pid: pid, pipe: pipe) {
        case .written: marker = ticket
        case .processGone: marker = .max
        case .notPossible: return
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    self.settle { $0.waiters.append(.init(ticket: ticket, marker: marker, continuation: continuation)) }
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                // Given up on, or already settled (then this finds nothing).
                self.settle { $0.expired.insert(ticket) }
            }
            await group.next()
            group.cancelAll()
        }
        reading.withLock { _ = $0.expired.remove(ticket) }
    }

    /// Changes the reading state and resumes the waiters that are then done.
    private func settle(_ change: (inout Reading) -> Void) {
        let done = reading.withLock { reading in
            change(&reading)
            return reading.settled()
        }
        for waiter in done { waiter.resume() }
    }

    private func outputClosed() {
        settle { $0.closed = true }
    }

    private enum MarkerWrite { case written, processGone, notPossible }

    /// Writes marker `number` into the pipe `pid`'s standard output is, if it still is that pipe.
    private static func writeMarker(_ number: UInt64, pid: Int32, pipe: (device: UInt64, inode: UInt64)) -> MarkerWrite {
        let path = "/proc/\(pid)/fd/1"
        let descriptor = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC)
        guard descriptor >= 0 else { return errno == ENOENT || errno == ESRCH ? .processGone : .notPossible }
        defer { close(descriptor) }
        // The function may have pointed its standard output elsewhere (a file): nothing is written there.
        guard let opened = pipeIdentity(descriptor: descriptor), opened == pipe else { return .notPossible }
        // The reader may close its end between the open and the write: that must be EPIPE, not a signal that
        // ends the server (NIO ignores SIGPIPE process-wide on Linux too, but only once it has made a socket).
        _ = ignoringBrokenPipes
        let bytes = LineSplitter.marker(number)
        // Shorter than PIPE_BUF, so written whole or not at all; a full pipe (a reader far behind) is not waited on.
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        return written == bytes.count ? .written : .notPossible
    }

    private static let ignoringBrokenPipes: Bool = {
        _ = Glibc.signal(SIGPIPE, SIG_IGN)
        return true
    }()

    private static func pipeIdentity(path: String) -> (device: UInt64, inode: UInt64)? {
        var status = stat()
        guard stat(path, &status) == 0, status.st_mode & S_IFMT == S_IFIFO else { return nil }
        return (UInt64(status.st_dev), UInt64(status.st_ino))
    }

    private static func pipeIdentity(descriptor: Int32) -> (device: UInt64, inode: UInt64)? {
        var status = stat()
        guard fstat(descriptor, &status) == 0, status.st_mode & S_IFMT == S_IFIFO else { return nil }
        return (UInt64(status.st_dev), UInt64(status.st_ino))
    }

    /// How swift-subprocess finds a program: an absolute path as it is, a relative one
    /// (`.venv/bin/python`) in the working directory it will run in, a bare name in `PATH`.
    static func executable(_ program: String, in directory: URL?) -> Executable {
        if program.hasPrefix("/") { return .path(FilePath(program)) }
        if program.contains("/") {
            let base = directory?.path ?? FileManager.default.currentDirectoryPath
            return .path(FilePath(URL(fileURLWithPath: program, relativeTo: URL(fileURLWithPath: base, isDirectory: true)).standardizedFileURL.path))
        }
        return .name(program)
    }

    /// The process id while it runs.
    var pid: Int32? {
        phase.withLock { phase in
            switch phase {
            case .running(let pid, _), .outputClosed(let pid): return pid
            case .notStarted, .exited: return nil
            }
        }
    }

    /// Whether it has exited.
    var hasExited: Bool { phase.withLock { if case .exited = $0 { true } else { false } } }

    /// Sends a signal (`SIGKILL` at a deadline, `SIGTERM` at shutdown); one asked for before the process
    /// started is sent when it starts.
    func signal(_ signal: Int32) {
        enum Action { case none, send(@Sendable (Int32) -> Void), kill(Int32) }
        let action: Action = phase.withLock { phase in
            switch phase {
            case .notStarted(let pending):
                // SIGKILL wins over anything asked for earlier.
                phase = .notStarted(pendingSignal: pending == SIGKILL ? SIGKILL : signal)
                return .none
            case .running(_, let send): return .send(send)
            case .outputClosed(let pid): return .kill(pid)
            case .exited: return .none
            }
        }
        switch action {
        case .none: break
        case .send(let send): send(signal)
        case .kill(let pid): _ = kill(pid, signal)
        }
    }

    /// Peak resident memory in MB so far (`VmHWM`), as Lambda's "Max Memory Used".
    func peakMemoryMB() -> Int? { statusField("VmHWM:").map { ($0 + 1023) / 1024 } }

    /// Resident memory now, in MB (`VmRSS`).
    func residentMemoryMB() -> Int? { statusField("VmRSS:").map { ($0 + 1023) / 1024 } }

    private func statusField(_ name: String) -> Int? {
        guard let pid, let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix(name) {
            return line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Int($0) }
        }
        return nil
    }
}
