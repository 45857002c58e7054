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
                    var lines = LineSplitter(limit: Self.maximumLineBytes)
                    let emit: (String) -> Void = { line in
                        logger.info("\(line)")
                        onLine(line)
                    }
                    do {
                        for try await buffer in execution.standardOutput {
                            buffer.withUnsafeBytes { lines.append($0, emit: emit) }
                        }
                    } catch {
                        // The read ends early only when the process is being torn down; what was read stays logged.
                    }
                    lines.finish(emit: emit)
                    phase.withLock { $0 = .outputClosed(pid: pid) }
                }
            } onCancel: {
                self.signal(SIGKILL)
            }
            phase.withLock { $0 = .exited }
            switch result.terminationStatus {
            case .exited(let code): return .status(code)
            case .signaled(let signal): return .signal(signal)
            }
        } catch {
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
