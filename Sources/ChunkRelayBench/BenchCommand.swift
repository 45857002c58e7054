import ChunkRelayServer
import ArgumentParser
import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import RelayClient
import RelayProtocol

/// `chunkrelay bench`: measurements to rerun, each printing a table.
public struct BenchCommand: AsyncParsableCommand {
    /// The subcommands, one per benchmark.
    public static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Run a benchmark and print a table (build with -c release for meaningful numbers).",
        subcommands: [DataPathBench.self, DeliveryBench.self, StreamMemoryBench.self, InvokeBench.self]
    )

    /// Made by ArgumentParser.
    public init() {}
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
        try await BenchServer.with(functions: functions, arguments: ["--chunk-size", String(chunkSize)]) { server in
            try await measure(server)
        }
    }

    private func measure(_ server: BenchServer) async throws {
        let gateway = server.gatewayURL
        let baseline = server.memory

        let client = RelayClient(baseURL: gateway)
        let created = try await client.createJob(
            CreateJobRequest(function: "chaos", params: ["mode": .string("upload"), "bytes": .number(Double(bytes))], delivery: .stream)
        )
        print("job \(created.id): \(bytes) bytes through a \(chunkSize)-byte cap, read at \(rate) B/s; this takes about \(Int(Double(bytes) * 4 / 3 / Double(rate))) s")

        // Sample the server's resident memory while the transfer runs.
        let pid = server.process.pid
        let sampler = Task.detached {
            var peak = 0
            while !Task.isCancelled {
                peak = max(peak, BenchServer.memory(of: pid).rss)
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
        let final = server.memory
        let digest = ContentDigest(hasher.finalize()).hex
        let budget = 64 << 20 + 4 * chunkSize
        let peak = max(final.hwm, sampledPeak)
        let rows: [(String, String)] = [
            ("image", "\(bytes) B (\(bytes >> 20) MiB)"),
            ("chunk cap", "\(chunkSize) B"),
            ("reader rate (wire)", String(format: "%.1f MB/s target, %.1f MB/s achieved", Double(rate) / 1e6, Double(wire) / 1e6 / elapsed.inSeconds)),
            ("transfer time", String(format: "%.1f s", elapsed.inSeconds)),
            ("digest", done.map { $0.sha256 == digest && $0.bytes == received ? "verified (\(digest.prefix(16))…)" : "MISMATCH" } ?? "no done event"),
            ("server RSS before", BenchServer.mib(baseline.rss)),
            ("server peak RSS (VmHWM)", BenchServer.mib(peak)),
            ("budget 64 MiB + 4 × cap", BenchServer.mib(budget)),
            ("result", peak < budget ? "PASS" : "FAIL"),
        ]
        let width = rows.map(\.0.count).max() ?? 0
        print("")
        print("| " + "measure".padding(toLength: width, withPad: " ", startingAt: 0) + " | value |")
        print("|" + String(repeating: "-", count: width + 2) + "|-------|")
        for (name, value) in rows { print("| " + name.padding(toLength: width, withPad: " ", startingAt: 0) + " | \(value) |") }
        if peak >= budget || done == nil { throw ExitCode(1) }
    }
}
