import Foundation
import RelayClient
import RelayProtocol
import TestSupport
import Testing

extension EndToEnd {
    /// Function processes started and stopped a thousand times with the server up: the churn that
    /// crashed the server in libdispatch while processes ran under Foundation's `Process`.
    @Suite(.timeLimit(.minutes(15))) struct ProcessChurnTests {
        /// Child processes of this test process running `name` (the in-process runtime's function processes);
        /// a zombie (killed, not reaped yet) counts only with `includingZombies`.
        static func children(named name: String, includingZombies: Bool = false) -> [Int32] {
            let me = getpid()
            var found: [Int32] = []
            for thread in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(me)/task")) ?? [] {
                guard let list = try? String(contentsOfFile: "/proc/\(me)/task/\(thread)/children", encoding: .utf8) else { continue }
                for pid in list.split(separator: " ").compactMap({ Int32($0) }) {
                    // `pid (comm) S …`: the state follows the last `)`.
                    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                        let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")")
                    else { continue }
                    let comm = stat[stat.index(after: open)..<close]
                    let state = stat[stat.index(after: close)...].dropFirst().first
                    if comm == name, includingZombies || state != "Z" { found.append(pid) }
                }
            }
            return found
        }

        /// `CHUNKRELAY_CHURN_CYCLES` overrides the count (at least 1,000 in the suite).
        static var cycles: Int { ProcessInfo.processInfo.environment["CHUNKRELAY_CHURN_CYCLES"].flatMap(Int.init) ?? 1000 }

        @Test func aThousandFunctionProcessesStartedAndStoppedLeaveTheServerUpAndTheNextJobCompletes() async throws {
            try await withChunkRelay(maxConcurrency: 1) { gateway, _ in
                let client = RelayClient(baseURL: gateway)
                let sleep = CreateJobRequest(function: "chaos", params: ["mode": .string("sleep"), "seconds": .number(30)], delivery: .retrieve)
                var pids = Set<Int32>()
                for cycle in 0..<Self.cycles {
                    let job = try await client.createJob(sleep)
                    // A real process start: the job's function process exists...
                    try await eventually("cycle \(cycle): a chaos process to start", within: .seconds(120), every: .milliseconds(2)) {
                        !Self.children(named: "chaos").isEmpty
                    }
                    pids.formUnion(Self.children(named: "chaos"))
                    // ...and a real stop: the DELETE kills it.
                    let cancelled = try await client.cancel(job.id)
                    #expect(cancelled.state == .cancelled)
                    try await eventually("cycle \(cycle): the chaos process to be stopped", within: .seconds(120), every: .milliseconds(2)) {
                        Self.children(named: "chaos").isEmpty
                    }
                }
                #expect(pids.count >= Self.cycles, "every cycle started a process of its own")
                try await eventually("every killed process to be reaped") { Self.children(named: "chaos", includingZombies: true).isEmpty }
                // The server is still up and the next job completes, byte for byte.
                let directory = FileManager.default.temporaryDirectory.appendingPathComponent("churn-\(UUID().uuidString)")
                try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
                defer { try? FileManager.default.removeItem(at: directory) }
                let out = directory.appendingPathComponent("image.bin")
                let upload = CreateJobRequest(function: "chaos", params: ["mode": .string("upload"), "bytes": .number(300_000)], delivery: .retrieve)
                let image = try await client.generate(upload, to: out)
                let bytes = try Data(contentsOf: out)
                #expect(bytes.count == 300_000)
                #expect(ContentDigest(of: Array(bytes)).hex == image.sha256)
            }
        }
    }
}
