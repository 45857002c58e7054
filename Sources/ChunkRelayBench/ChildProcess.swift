import Foundation
import Subprocess
import Synchronization

#if canImport(System)
import System
#else
import SystemPackage
#endif

/// A program run as a child process with swift-subprocess (never Foundation's `Process`, whose
/// dispatch-source teardown crashes under churn on Linux): its output, standard error included, is
/// appended to a log file; it can be signalled and awaited from any task.
///
/// Used by `bench` to run `serve` beside itself, and by the end-to-end tests.
final class ChildProcess: Sendable {
    /// Where its output goes.
    let log: URL
    private struct State {
        var pid: Int32?
        var send: (@Sendable (Int32) -> Void)?
        var exitStatus: Int32?
    }

    private let state = Mutex(State())
    private let supervisor = Mutex<Task<Int32, Never>?>(nil)

    private init(log: URL) {
        self.log = log
    }

    /// Starts `arguments` (a path, or a name looked up in `PATH`) in `directory`; returns once it runs.
    static func start(_ arguments: [String], directory: URL? = nil, log: URL) async throws -> ChildProcess {
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let child = ChildProcess(log: log)
        let (started, startedContinuation) = AsyncThrowingStream.makeStream(of: Void.self)
        let task = Task<Int32, Never> {
            do {
                let result = try await Subprocess.run(
                    executable(arguments[0]), arguments: Arguments(Array(arguments.dropFirst())),
                    workingDirectory: directory.map { FilePath($0.path) }, input: .none, output: .sequence, error: .combinedWithOutput
                ) { execution in
                    child.state.withLock { state in
                        state.pid = execution.processIdentifier.value
                        state.send = { signal in try? execution.send(signal: Signal(rawValue: signal)) }
                    }
                    startedContinuation.finish()
                    let handle = try FileHandle(forWritingTo: log)
                    defer { try? handle.close() }
                    do {
                        for try await buffer in execution.standardOutput {
                            buffer.withUnsafeBytes { handle.write(Data($0)) }
                        }
                    } catch {
                        // Torn down: the exit status still comes from the reaped process.
                    }
                    child.state.withLock { $0.send = nil }
                }
                let status: Int32
                switch result.terminationStatus {
                case .exited(let code): status = code
                case .signaled(let signal): status = 128 + signal
                }
                child.state.withLock { $0.exitStatus = status }
                return status
            } catch {
                startedContinuation.finish(throwing: error)
                child.state.withLock { $0.exitStatus = 127 }
                return 127
            }
        }
        child.supervisor.withLock { $0 = task }
        for try await _ in started {}
        return child
    }

    private static func executable(_ name: String) -> Executable {
        name.contains("/") ? .path(FilePath(name)) : .name(name)
    }

    /// Its process id.
    var pid: Int32 { state.withLock { $0.pid ?? -1 } }

    /// Whether it has not exited yet.
    var isRunning: Bool { state.withLock { $0.exitStatus == nil } }

    /// Sends a signal while it runs.
    func signal(_ signal: Int32) {
        let (send, pid, running) = state.withLock { ($0.send, $0.pid, $0.exitStatus == nil) }
        if let send {
            send(signal)
        } else if running, let pid {
            // Its output closed but it has not been reaped yet.
            kill(pid, signal)
        }
    }

    /// Waits for it to exit; its status, or 128 + the signal that ended it.
    @discardableResult
    func waitForExit() async -> Int32 {
        guard let task = supervisor.withLock({ $0 }) else { return 127 }
        return await task.value
    }

    /// What it has written so far.
    var output: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

    /// The URL a server prints after `prefix` in its log (`gateway listening on http://…`), once it has.
    func announcedURL(after prefix: String, within timeout: Duration) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let text = output
            if let range = text.range(of: prefix) {
                return String(text[range.upperBound...].prefix { !$0.isWhitespace && $0 != ";" })
            }
            guard isRunning else { throw ChildProcessError("\(log.lastPathComponent): exited before announcing \(prefix):\n\(text)") }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw ChildProcessError("\(log.lastPathComponent): nothing announced \(prefix) within \(timeout):\n\(output)")
    }

    /// Runs `arguments` to completion and returns its exit status and combined output.
    static func run(_ arguments: [String], environment: [String: String]? = nil, directory: URL? = nil) async throws -> (status: Int32, output: String) {
        var variables: Environment = .inherit
        if let environment {
            var custom: [Environment.Key: String] = [:]
            for (key, value) in environment { if let key = Environment.Key(rawValue: key) { custom[key] = value } }
            variables = .custom(custom)
        }
        let result = try await Subprocess.run(
            executable(arguments[0]), arguments: Arguments(Array(arguments.dropFirst())), environment: variables,
            workingDirectory: directory.map { FilePath($0.path) }, input: .none, output: .sequence, error: .combinedWithOutput
        ) { execution in
            var output: [UInt8] = []
            for try await buffer in execution.standardOutput { buffer.withUnsafeBytes { output.append(contentsOf: $0) } }
            return output
        }
        let status: Int32
        switch result.terminationStatus {
        case .exited(let code): status = code
        case .signaled(let signal): status = 128 + signal
        }
        return (status, String(decoding: result.closureResult, as: UTF8.self))
    }
}

/// A child process that did not do what was expected of it; the message quotes its log.
struct ChildProcessError: Error, CustomStringConvertible {
    /// What happened.
    var description: String
    init(_ description: String) { self.description = description }
}
