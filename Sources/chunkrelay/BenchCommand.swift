import ArgumentParser
import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import RelayClient
import RelayProtocol

/// `chunkrelay bench`: measurements to rerun, each printing a table.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Run a benchmark and print a table (build with -c release for meaningful numbers).",
        subcommands: [StreamMemoryBench.self, InvokeBench.self]
    )
}

/// The gateway's peak memory while it relays a large image to a slow stream reader.
///
/// Starts `chunkrelay serve` as its own process, has the `chaos` function upload `--bytes` in stream
/// mode, reads the job's event stream at `--rate` bytes per second, and reports the server's peak
/// resident memory (`VmHWM`) against the budget of 64 MiB + 4 × the chunk cap.
struct StreamMemoryBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stream-memory", abstract: "Peak gateway RSS relaying a large image to a slow SSE reader.")

    @Option(help: "Image size in bytes.") var bytes = 1 << 30
    @Option(help: "Reader speed in bytes per second (on the wire, base64 included).") var rate = 10_000_000
    @Option(name: .customLong("chunk-size"), help: "Chunk size cap.") var chunkSize = 1 << 20
    @Option(help: "Folder of functions.") var functions = "functions"

    func run() async throws {
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("bench-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: state) }
        let server = try await ChildProcess.start(
            [
                URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path,
                "serve", "--port", "0", "--runtime-port", "0", "--state-dir", state.path, "--functions", functions,
                "--chunk-size", String(chunkSize), "--log-level", "notice",
            ],
            log: state.appendingPathExtension("log")
        )
        defer { try? FileManager.default.removeItem(at: server.log) }
        // Whatever way the benchmark ends, the server does not outlive it (a no-op once it has exited).
        defer { server.signal(SIGKILL) }
        let gateway = try await server.announcedURL(after: "gateway listening on ", within: .seconds(120))
        let baseline = Self.memory(of: server.pid)

        let client = RelayClient(baseURL: gateway)
        let created = try await client.createJob(
            CreateJobRequest(function: "chaos", params: ["mode": .string("upload"), "bytes": .number(Double(bytes))], delivery: .stream)
        )
        print("job \(created.id): \(bytes) bytes through a \(chunkSize)-byte cap, read at \(rate) B/s; this takes about \(Int(Double(bytes) * 4 / 3 / Double(rate))) s")

        // Sample the server's resident memory while the transfer runs.
        let pid = server.pid
        let sampler = Task.detached {
            var peak = 0
            while !Task.isCancelled {
                peak = max(peak, Self.memory(of: pid).rss)
                try? await Task.sleep(for: .milliseconds(100))
            }
            return peak
        }
        let started = ContinuousClock.now
        var hasher = SHA256()
        var received: Int64 = 0
        var wire = 0
        var done: DoneEvent?
        var parser = ServerSentEventParser()
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: "\(gateway)/v1/jobs/\(created.id)/events"), deadline: .distantFuture)
        reading: for try await buffer in response.body {
            wire += buffer.readableBytes
            for event in parser.push(buffer.readableBytesView) {
                if let typed = try JobEvent(event) {
                    switch typed {
                    case .chunk(_, let chunk):
                        hasher.update(data: chunk)
                        received += Int64(chunk.count)
                    case .done(let event):
                        done = event
                        break reading
                    case .failed(let error):
                        throw ExitMessage("the job failed: \(error.code): \(error.message)")
                    default:
                        break
                    }
                }
            }
            // A slow reader: hold back until the wire bytes so far fit the rate.
            let due = started + .milliseconds(Int64(Double(wire) / Double(rate) * 1000))
            if due > ContinuousClock.now { try await Task.sleep(until: due) }
        }
        let elapsed = ContinuousClock.now - started
        sampler.cancel()
        let sampledPeak = await sampler.value
        let final = Self.memory(of: pid)
        let digest = ContentDigest(hasher.finalize()).hex
        let budget = 64 << 20 + 4 * chunkSize
        let peak = max(final.hwm, sampledPeak)
        let rows: [(String, String)] = [
            ("image", "\(bytes) B (\(bytes >> 20) MiB)"),
            ("chunk cap", "\(chunkSize) B"),
            ("reader rate (wire)", String(format: "%.1f MB/s target, %.1f MB/s achieved", Double(rate) / 1e6, Double(wire) / 1e6 / Self.seconds(elapsed))),
            ("transfer time", String(format: "%.1f s", Self.seconds(elapsed))),
            ("digest", done.map { $0.sha256 == digest && $0.bytes == received ? "verified (\(digest.prefix(16))…)" : "MISMATCH" } ?? "no done event"),
            ("server RSS before", Self.mib(baseline.rss)),
            ("server peak RSS (VmHWM)", Self.mib(peak)),
            ("budget 64 MiB + 4 × cap", Self.mib(budget)),
            ("result", peak < budget ? "PASS" : "FAIL"),
        ]
        let width = rows.map(\.0.count).max() ?? 0
        print("")
        print("| " + "measure".padding(toLength: width, withPad: " ", startingAt: 0) + " | value |")
        print("|" + String(repeating: "-", count: width + 2) + "|-------|")
        for (name, value) in rows { print("| " + name.padding(toLength: width, withPad: " ", startingAt: 0) + " | \(value) |") }
        server.signal(SIGTERM)
        await server.waitForExit()
        if peak >= budget || done == nil { throw ExitCode(1) }
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

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
