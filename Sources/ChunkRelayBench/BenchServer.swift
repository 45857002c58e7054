import Foundation

/// A `chunkrelay serve` started by a benchmark as its own process (so its memory and CPU are its
/// own), on loopback ports the kernel picks, with a fresh state folder that goes with it.
struct BenchServer {
    let process: ChildProcess
    let gatewayURL: String
    let stateDirectory: URL

    /// Starts `serve` with `arguments` added to the benchmark's defaults; returns once it listens.
    static func start(functions: String, arguments: [String]) async throws -> BenchServer {
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("bench-\(UUID().uuidString)")
        let process = try await ChildProcess.start(
            [
                URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path,
                "serve", "--port", "0", "--runtime-port", "0", "--state-dir", state.path, "--functions", functions,
                "--log-level", "notice",
            ] + arguments,
            log: state.appendingPathExtension("log")
        )
        do {
            let url = try await process.announcedURL(after: "gateway listening on ", within: .seconds(120))
            return BenchServer(process: process, gatewayURL: url, stateDirectory: state)
        } catch {
            process.signal(SIGKILL)
            throw error
        }
    }

    /// Stops the server and removes its files.
    func stop() async {
        process.signal(SIGKILL)
        await process.waitForExit()
        try? FileManager.default.removeItem(at: stateDirectory)
        try? FileManager.default.removeItem(at: process.log)
    }

    /// Runs `body` with a server that is stopped and removed however `body` ends.
    static func with<T>(functions: String, arguments: [String], _ body: (BenchServer) async throws -> T) async throws -> T {
        let server = try await start(functions: functions, arguments: arguments)
        do {
            let result = try await body(server)
            await server.stop()
            return result
        } catch {
            await server.stop()
            throw error
        }
    }

    /// Resident memory now and at its peak (`VmRSS`, `VmHWM`), in bytes.
    var memory: (rss: Int, hwm: Int) { Self.memory(of: process.pid) }

    /// CPU time the server's own threads have used (user + system), not its children's.
    var cpuTime: Duration { Self.cpuTime(of: process.pid) }

    /// CPU time a process's own threads have used (user + system), not its children's.
    static func cpuTime(of pid: Int32) -> Duration {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return .zero }
        // Fields after the command name: state is field 3, utime 14 and stime 15 (1-based, man 5 proc).
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Int64(fields[11]), let system = Int64(fields[12]) else { return .zero }
        let ticks = Int64(sysconf(Int32(_SC_CLK_TCK)))
        return .milliseconds((user + system) * 1000 / max(ticks, 1))
    }

    /// The whole machine's CPU time, busy and in all, summed over its cores (`/proc/stat`'s `cpu` line):
    /// how much of the machine a measure used, whichever processes used it.
    static func machineCPU() -> (busy: Duration, all: Duration) {
        guard let stat = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
            let line = stat.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") })
        else { return (.zero, .zero) }
        // user nice system idle iowait irq softirq steal: idle and iowait are the machine waiting.
        let ticks = line.split(separator: " ").dropFirst().prefix(8).compactMap { Int64($0) }
        guard ticks.count == 8 else { return (.zero, .zero) }
        let perSecond = Int64(sysconf(Int32(_SC_CLK_TCK)))
        let all = ticks.reduce(0, +)
        let busy = all - ticks[3] - ticks[4]
        return (.milliseconds(busy * 1000 / max(perSecond, 1)), .milliseconds(all * 1000 / max(perSecond, 1)))
    }

    static func memory(of pid: Int32) -> (rss: Int, hwm: Int) {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return (0, 0) }
        func field(_ name: String) -> Int {
            for line in status.split(separator: "\n") where line.hasPrefix(name) {
                return (line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Int($0) } ?? 0) * 1024
            }
            return 0
        }
        return (field("VmRSS:"), field("VmHWM:"))
    }

    static func mib(_ bytes: Int) -> String { String(format: "%.1f MiB", Double(bytes) / 1_048_576) }

}
