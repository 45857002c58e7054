import AsyncHTTPClient
@testable import ChunkRelayBench
import Foundation
import RelayClient
import RelayProtocol
import TestSupport
import Testing

extension EndToEnd {
    /// The real `chunkrelay serve` with its state folder on a real small disk (a tmpfs the test mounts;
    /// root, as CI runs), with more default maps asked for than it can hold.
    @Suite(.timeLimit(.minutes(10))) struct DiskFullTests {
        /// functions/map-render/fixtures/defaults.json.
        static let defaultMap = (bytes: Int64(16_783_593), sha256: "30f800d1d5ebff9f84941ed647a37e2478872907ac3376546a4a19118de0c929")

        static func status(of url: String) async throws -> Int {
            Int(try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(5)).status.code)
        }

        @Test(.enabled(if: SmallDisk.available))
        func mapsThatDoNotFitFailStorageFullTheOneThatDidIsServedAndWorkResumesWhenSpaceIsBack() async throws {
            // 32 MiB, less the 4 MiB reserve and a 2 MiB mark: room for one 16.8 MB map, not two.
            try await SmallDisk.with(megabytes: 32) { disk in
                // The state folder is the disk itself; the server's log goes beside it, elsewhere.
                let server = try await ServeProcess.start(stateDirectory: disk.url, arguments: ["--min-free-space", "2MiB"])
                let client = RelayClient(baseURL: server.gateway)
                do {
                    let first = try await client.createJob(CreateJobRequest(function: "map-render", delivery: .retrieve))
                    #expect(try await client.waitUntilReady(first.id).state == .ready)

                    // Three more at once: none fits beside the first one's image.
                    var others: [String] = []
                    for _ in 0..<3 { others.append(try await client.createJob(CreateJobRequest(function: "map-render", delivery: .retrieve)).id) }
                    let health = Locked<Set<Int>>([])
                    let watching = Task {
                        while !Task.isCancelled {
                            if let status = try? await Self.status(of: "\(server.gateway)/healthz") { health.update { _ = $0.insert(status) } }
                            try? await Task.sleep(for: .milliseconds(200))
                        }
                    }
                    var ended: [JobStatus] = []
                    for id in others {
                        try await eventually("job \(id) to end", within: .seconds(400), every: .milliseconds(500)) { try await client.job(id).state.isFinal }
                        ended.append(try await client.job(id))
                    }
                    watching.cancel()
                    for job in ended {
                        #expect(job.state == .failed, "\(job.id): \(job.state)")
                        #expect(job.error?.code == "storage_full", "\(job.id): \(String(describing: job.error))")
                        #expect(job.attempts == 3, "Lambda's two retries, then failed")
                    }
                    #expect(health.value.contains(503), "/healthz said 503 while uploads were refused: \(health.value)")

                    // The ready one is served whole, with the bytes that were verified.
                    let status = try await client.job(first.id)
                    let image = try await client.retrieve(
                        imagePath: try #require(status.image), expectedSHA256: Self.defaultMap.sha256,
                        to: disk.url.deletingLastPathComponent().appendingPathComponent("\(first.id).png"))
                    #expect(image.bytes == Self.defaultMap.bytes)
                    try? FileManager.default.removeItem(at: image.file)

                    // Its fetch freed the space: the next map is made, with no restart.
                    try await eventually("the gateway to take work again", within: .seconds(30)) {
                        try await Self.status(of: "\(server.gateway)/healthz") == 200
                    }
                    let next = try await client.createJob(CreateJobRequest(function: "map-render", delivery: .retrieve))
                    let ready = try await client.waitUntilReady(next.id)
                    #expect(ready.sha256 == Self.defaultMap.sha256)

                    // Nobody, function or client, was answered 500.
                    let log = server.child.output
                    #expect(!log.contains("unhandled error"))
                    #expect(!log.contains(": 500,") && !log.contains("answered 500"), "a 500 in the log")
                    #expect(log.contains("storage short"))
                } catch {
                    _ = await server.terminate()
                    throw error
                }
                _ = await server.terminate()
            }
        }
    }
}
