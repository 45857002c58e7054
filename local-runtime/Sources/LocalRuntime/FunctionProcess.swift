import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One execution environment's operating-system process, with its output forwarded to the log.
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

    private struct State {
        var exit: Exit?
        var waiters: [CheckedContinuation<Exit, Never>] = []
        var partialLine: [UInt8] = []
    }

    /// The process id.
    let pid: Int32
    private let process: Process
    private let box = Box()

    /// Shared with the process's callbacks, which cannot borrow a stored `Mutex`.
    private final class Box: Sendable {
        let state = Mutex(State())
    }

    /// Starts `commandLine` in `directory` with exactly `environment`.
    init(
        commandLine: [String], directory: URL?, environment: [String: String], logger: Logger,
        onLine: @escaping @Sendable (String) -> Void = { _ in }
    ) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: commandLine[0].hasPrefix("/") ? commandLine[0] : "/usr/bin/env")
        process.arguments = commandLine[0].hasPrefix("/") ? Array(commandLine.dropFirst()) : commandLine
        process.environment = environment
        if let directory { process.currentDirectoryURL = directory }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        self.process = process
        let box = self.box
        output.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty {
                handle.readabilityHandler = nil
                return
            }
            let lines: [String] = box.state.withLock { state in
                state.partialLine.append(contentsOf: data)
                var lines: [String] = []
                while let newline = state.partialLine.firstIndex(of: UInt8(ascii: "\n")) {
                    lines.append(String(decoding: state.partialLine[..<newline], as: UTF8.self))
                    state.partialLine.removeSubrange(...newline)
                }
                return lines
            }
            for line in lines {
                logger.info("\(line)")
                onLine(line)
            }
        }
        process.terminationHandler = { process in
            let exit: Exit = process.terminationReason == .uncaughtSignal ? .signal(process.terminationStatus) : .status(process.terminationStatus)
            let waiters = box.state.withLock { state in
                state.exit = exit
                defer { state.waiters = [] }
                return state.waiters
            }
            for waiter in waiters { waiter.resume(returning: exit) }
        }
        try process.run()
        self.pid = process.processIdentifier
    }

    /// Waits until the process has exited.
    func waitForExit() async -> Exit {
        await withCheckedContinuation { continuation in
            let exit: Exit? = box.state.withLock { state in
                if let exit = state.exit { return exit }
                state.waiters.append(continuation)
                return nil
            }
            if let exit { continuation.resume(returning: exit) }
        }
    }

    /// Whether it has exited.
    var hasExited: Bool { box.state.withLock { $0.exit != nil } }

    /// Sends a signal (`SIGKILL` at a deadline, `SIGTERM` at shutdown).
    func signal(_ signal: Int32) {
        guard !hasExited else { return }
        kill(pid, signal)
    }

    /// Peak resident memory in MB so far (`VmHWM`), as Lambda's "Max Memory Used".
    func peakMemoryMB() -> Int? { statusField("VmHWM:").map { ($0 + 1023) / 1024 } }

    /// Resident memory now, in MB (`VmRSS`).
    func residentMemoryMB() -> Int? { statusField("VmRSS:").map { ($0 + 1023) / 1024 } }

    private func statusField(_ name: String) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix(name) {
            return line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Int($0) }
        }
        return nil
    }
}
