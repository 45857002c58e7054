import AsyncHTTPClient
import ChunkRelayTesting
import Foundation
import NIOCore
import RelayClient
import RelayProtocol
import TestSupport
import Testing

extension EndToEnd {
    /// The whole system for real: gateway and runtime on sockets, `map-render` as its own process,
    /// the SDK downloading once.
    @Suite(.timeLimit(.minutes(10))) struct EndToEndTests {
        /// A decoder that is not ours reads the full-size map (skipped, visibly, without Pillow outside CI).
        @Test(.enabled("needs Pillow (CI installs it)") { await Pillow.python() != nil || runningInCI })
        func theFullSizeMapDecodesWithPillow() async throws {
            try await withChunkRelay { gateway, _ in
                let out = FileManager.default.temporaryDirectory.appendingPathComponent("pillow-\(UUID().uuidString).png")
                defer { try? FileManager.default.removeItem(at: out) }
                let image = try await RelayClient(baseURL: gateway).generate(CreateJobRequest(function: "map-render"), to: out)
                #expect(image.bytes > 10_000_000)
                #expect(try await Pillow.describe(out) == "4096x4096 P")
            }
        }

        /// The fixtures shipped beside the functions (what `chunkrelay test` runs), through every delivery.
        @Test func theShippedFixturesPassThroughEveryDelivery() async throws {
            let fixtures = try Fixture.load(functions: repositoryRoot.appendingPathComponent("functions"))
            #expect(fixtures.map(\.id).contains("map-render/small-square"))
            try await withChunkRelay { gateway, _ in
                let results = try await FixtureRunner(client: RelayClient(baseURL: gateway)).run(fixtures)
                for result in results {
                    #expect(result.passed, "\(result.fixture.id) (\(result.delivery)): \(result.problems)")
                }
                #expect(Set(results.map(\.delivery)) == [.retrieve, .stream, .direct])
                #expect(results.contains { $0.fixture.content.expect?.error != nil }, "a failing case is among them")
            }
        }

        @Test func aDefaultMapIsOver10MBValidAndRetrievableOnce() async throws {
            try await withChunkRelay { gateway, _ in
                let client = RelayClient(baseURL: gateway)
                let created = try await client.createJob(CreateJobRequest(function: "map-render", params: ["width": .number(4096), "height": .number(4096)]))
                let updates = Locked<[JobEvent]>([])
                let status = try await client.waitUntilReady(created.id) { event in updates.update { $0.append(event) } }
                #expect(status.state == .ready)
                #expect(status.chunks == 17)
                #expect(status.bytes > 10_000_000)
                #expect(updates.value.contains { if case .progress = $0 { return true } else { return false } }, "progress was pushed while the function uploaded")
                #expect(updates.value.last == .ready(image: created.image ?? "", bytes: status.bytes, sha256: status.sha256 ?? ""))

                let out = FileManager.default.temporaryDirectory.appendingPathComponent("map-\(UUID().uuidString).png")
                defer { try? FileManager.default.removeItem(at: out) }
                let image = try await client.retrieve(imagePath: try #require(created.image), expectedSHA256: try #require(status.sha256), to: out)
                #expect(image.bytes > 10_000_000)
                let again = try await HTTPClient.shared.execute(HTTPClientRequest(url: gateway + (created.image ?? "")), timeout: .seconds(10))
                #expect(again.status.code == 410)
                #expect(try await client.job(created.id).state == .done)
            }
        }

        @Test func streamModeDeliversTheSameBytesAsRetrieveMode() async throws {
            let fixture = try #require(try Fixture(contentsOf: repositoryRoot.appendingPathComponent("functions/map-render/fixtures/defaults.json")).content.expect)
            try await withChunkRelay { gateway, _ in
                let client = RelayClient(baseURL: gateway)
                let out = FileManager.default.temporaryDirectory.appendingPathComponent("stream-\(UUID().uuidString).png")
                defer { try? FileManager.default.removeItem(at: out) }
                let events = Locked<[JobEvent]>([])
                let image = try await client.generate(CreateJobRequest(function: "map-render", delivery: .stream), to: out) { event in events.update { $0.append(event) } }
                #expect(image.sha256 == fixture.sha256)
                #expect(image.bytes == fixture.bytes)
                let chunkIndices = events.value.compactMap { if case .chunk(let index, _) = $0 { return index } else { return nil } }
                #expect(chunkIndices == Array(0..<17))
                #expect(events.value.first == .started(attempt: 1) || events.value.first == .queued(position: 1))
            }
        }

        @Test func aFunctionErrorFailsTheJobWithItsMessage() async throws {
            try await withChunkRelay { gateway, _ in
                let client = RelayClient(baseURL: gateway)
                let created = try await client.createJob(CreateJobRequest(function: "map-render", params: ["width": .number(0)]))
                await #expect {
                    _ = try await client.waitUntilReady(created.id)
                } throws: { error in
                    guard let error = error as? RelayClientError else { return false }
                    return error.code == "function_error" && error.message.contains("InvalidParameters") && error.message.contains("width must be")
                }
                let image = try await HTTPClient.shared.execute(HTTPClientRequest(url: gateway + (created.image ?? "")), timeout: .seconds(10))
                #expect(image.status.code == 410)
            }
        }

        @Test func aFunctionThatDiesMidUploadIsRolledBack() async throws {
            try await withChunkRelay(chunkSize: 64 << 10) { gateway, _ in
                let client = RelayClient(baseURL: gateway)
                let created = try await client.createJob(CreateJobRequest(function: "chaos", params: ["mode": .string("upload"), "bytes": .number(500_000), "crashAtChunk": .number(3)]))
                let events = Locked<[JobEvent]>([])
                await #expect(throws: RelayClientError.self) {
                    _ = try await client.waitUntilReady(created.id) { event in events.update { $0.append(event) } }
                }
                // Each attempt stored chunks before it died (so there was something to roll back): the progress
                // before the first `retrying` counts three 64 KiB chunks.
                let beforeRetry = events.value.prefix { if case .retrying = $0 { return false } else { return true } }
                let stored = beforeRetry.compactMap { if case .progress(let chunks, _) = $0 { return chunks } else { return nil } }.max()
                #expect(stored == 3, "\(events.value)")
                #expect(events.value.contains { if case .retrying(let attempt, _) = $0 { return attempt == 3 } else { return false } })
                let status = try await client.job(created.id)
                #expect(status.state == .failed)
                #expect(status.error?.code == "function_crashed")
                #expect(status.error?.message.contains("exit status 4") == true)
                #expect(status.attempts == 3, "retried twice, as chaos's maximumRetryAttempts says")
                #expect(status.chunks == 0, "no chunk of a failed attempt is kept")
            }
        }

        @Test func aFailedAttemptIsRetriedAndTheStreamStartsOver() async throws {
            try await withChunkRelay(chunkSize: 64 << 10) { gateway, _ in
                let client = RelayClient(baseURL: gateway)
                let out = FileManager.default.temporaryDirectory.appendingPathComponent("flaky-\(UUID().uuidString).bin")
                defer { try? FileManager.default.removeItem(at: out) }
                let events = Locked<[JobEvent]>([])
                let image = try await client.generate(
                    CreateJobRequest(function: "chaos", params: ["mode": .string("upload"), "bytes": .number(300_000), "succeedFromAttempt": .number(3)], delivery: .stream),
                    to: out
                ) { event in events.update { $0.append(event) } }
                #expect(image.bytes == 300_000)
                #expect(try Data(contentsOf: out) == Data(ChaosPattern.bytes(300_000, seed: 7)))
                // The failed attempts uploaded a chunk each before failing, and the stream started over after it.
                let firstRetry = try #require(events.value.firstIndex { if case .retrying = $0 { return true } else { return false } })
                #expect(events.value[..<firstRetry].contains { if case .progress(let chunks, _) = $0 { return chunks >= 1 } else { return false } })
                let retries = events.value.compactMap { if case .retrying(let attempt, let error) = $0 { return (attempt, error.code) } else { return nil } }
                #expect(retries.map(\.0) == [2, 3])
                #expect(retries.allSatisfy { $0.1 == "function_error" })
            }
        }

        @Test func chaosUploadsCompleteWhenNothingGoesWrong() async throws {
            try await withChunkRelay(chunkSize: 64 << 10) { gateway, _ in
                let client = RelayClient(baseURL: gateway)
                let out = FileManager.default.temporaryDirectory.appendingPathComponent("chaos-\(UUID().uuidString).bin")
                defer { try? FileManager.default.removeItem(at: out) }
                let image = try await client.generate(CreateJobRequest(function: "chaos", params: ["mode": .string("upload"), "bytes": .number(500_000)]), to: out)
                #expect(image.bytes == 500_000)
                let expected = ChaosPattern.bytes(500_000, seed: 7)
                #expect(try Data(contentsOf: out) == Data(expected))
            }
        }
    }
}
