import AsyncHTTPClient
@testable import ChunkRelayBench
@testable import chunkrelay
import Foundation
import NIOCore
import RelayClient
import RelayProtocol
import TestSupport
import Testing

extension EndToEnd {
    /// `kill -9` of the real server at several points of real jobs, restarting on the same state
    /// directory each time; every image is checked against map-render's known digests.
    @Suite(.timeLimit(.minutes(10))) struct CrashRecoveryTests {
        /// map-render 1000×600, seed 42 (functions/map-render/fixtures/wide-seed-42.json).
        static let wide = (params: ["width": JSONValue.number(1000), "height": .number(600), "seed": .number(42)], bytes: 601_454,
                           sha256: "5acb74bc85ac32229e4e9249b8505dd83d463341dd0ea708a8a50070ca3c932c")

        /// `map-render` processes whose parent is gone (re-parented to init or a subreaper).
        static func orphanedFunctionProcesses() -> [String] {
            let me = getpid()
            var found: [String] = []
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] where Int32(entry) != nil {
                guard let status = try? String(contentsOfFile: "/proc/\(entry)/status", encoding: .utf8),
                    status.hasPrefix("Name:\tmap-render"),
                    let ppidLine = status.split(separator: "\n").first(where: { $0.hasPrefix("PPid:") }),
                    let ppid = Int32(ppidLine.dropFirst(5).trimmingCharacters(in: .whitespaces))
                else { continue }
                // Started by a serve process of this test, which is gone: the parent is no longer a chunkrelay.
                let parentName = (try? String(contentsOfFile: "/proc/\(ppid)/comm", encoding: .utf8)) ?? ""
                if ppid != me, !parentName.hasPrefix("chunkrelay") { found.append("\(entry) (parent \(ppid) \(parentName))") }
            }
            return found
        }

        @Test func killNineAtAnyPointLosesNothing() async throws {
            try await withScratchDirectory("crash") { root in
                let state = root.appendingPathComponent("state")
                // One invocation at a time and 1 KiB chunks: jobs queue up, and an upload takes long enough to be cut.
                let arguments = ["--max-concurrency", "1", "--chunk-size", "1024"]
                var server = try await ServeProcess.start(stateDirectory: state, arguments: arguments)
                let port = server.gatewayPort
                let client = RelayClient(baseURL: server.gateway)
                func restart() async throws {
                    server = try await ServeProcess.start(stateDirectory: state, port: port, arguments: arguments)
                }

                // 1. Killed mid-upload, with three jobs queued behind the running one.
                var ids: [String] = []
                for _ in 0..<4 {
                    ids.append(try await client.createJob(CreateJobRequest(function: "map-render", params: Self.wide.params, delivery: .retrieve)).id)
                }
                var keys: [String: String] = [:]
                for id in ids { keys[id] = try await client.job(id).image }
                for try await event in client.events(ids[0]) {
                    if case .progress(let chunks, _) = event, chunks >= 50 { break }
                    if event.isFinal { Issue.record("job finished before the kill: \(event)"); break }
                }
                let before = try await client.job(ids[0])
                #expect(before.state == .running && before.chunks < 588, "killed mid-upload (\(before.chunks) chunks)")
                #expect(try await client.job(ids[1]).position == 1)
                await server.kill9()
                try await restart()
                // The running job went to the front and runs again as a new attempt; the queue kept its order.
                let again = try await client.job(ids[0])
                #expect(again.attempts == 2, "\(again)")
                #expect(again.state == .running || again.state == .ready, "\(again)")
                let positions = try await [client.job(ids[1]).position, client.job(ids[2]).position, client.job(ids[3]).position]
                #expect(positions == [1, 2, 3], "\(positions)")

                // 2. Killed while an image is being downloaded: the key stays retrievable.
                _ = try await client.waitUntilReady(ids[0])
                let partial = try await HTTPClient.shared.execute(HTTPClientRequest(url: "\(server.gateway)/v1/images/\(keys[ids[0]]!.split(separator: "/").last!)"), timeout: .seconds(30))
                #expect(partial.status == .ok)
                var iterator = partial.body.makeAsyncIterator()
                _ = try await iterator.next()
                await server.kill9()
                try await restart()
                let first = try await client.retrieve(imagePath: keys[ids[0]]!, expectedSHA256: Self.wide.sha256, to: root.appendingPathComponent("0.png"))
                #expect(first.bytes == Int64(Self.wide.bytes))

                // 3. Killed right after a retrieval is recorded (`done`; the gateway records it once the
                // client's TCP has acknowledged the last byte): a consumed key stays consumed.
                try await eventually("the retrieval to be recorded", within: .seconds(60), every: .milliseconds(5)) {
                    try await client.job(ids[0]).state == .done
                }
                await server.kill9()
                try await restart()
                let consumed = try await HTTPClient.shared.execute(HTTPClientRequest(url: "\(server.gateway)\(keys[ids[0]]!)"), timeout: .seconds(10))
                #expect(consumed.status == .gone)

                // 4. Killed while a stream client is following a stream job: it reconnects, hears the job
                // start over, and ends with the whole image.
                let streamed = try await client.createJob(CreateJobRequest(function: "map-render", params: Self.wide.params, delivery: .stream))
                let chunkEvents = Locked(0)
                async let image = client.streamImage(streamed.id, to: root.appendingPathComponent("stream.png")) { event in
                    if case .chunk = event { chunkEvents.update { $0 += 1 } }
                }
                try await eventually("30 chunks to reach the stream client", within: .seconds(60), every: .milliseconds(5)) { chunkEvents.value >= 30 }
                await server.kill9()
                try await restart()
                let streamedImage = try await image
                #expect(streamedImage.sha256 == Self.wide.sha256)

                // Every queued job completes with the right bytes.
                for (index, id) in ids.enumerated().dropFirst() {
                    _ = try await client.waitUntilReady(id)
                    let file = try await client.retrieve(imagePath: keys[id]!, expectedSHA256: Self.wide.sha256, to: root.appendingPathComponent("\(index).png"))
                    #expect(file.bytes == Int64(Self.wide.bytes))
                }
                #expect(await server.terminate() == 0)
                // Restarted once more: nothing of the abandoned attempts is left in the spool, only the
                // finished stream's file (kept for clients that resume).
                try await restart()
                let spool = (try? FileManager.default.contentsOfDirectory(atPath: state.appendingPathComponent("spool").path)) ?? []
                #expect(spool == ["\(streamed.id).\(try await client.job(streamed.id).attempts).part"], "\(spool)")
                let images = (try? FileManager.default.contentsOfDirectory(atPath: state.appendingPathComponent("images").path)) ?? []
                #expect(images.isEmpty, "every image was retrieved: \(images)")
                #expect(await server.terminate() == 0)
                // Function processes of the killed servers ended on their own: none is left orphaned.
                let clean = (try? await eventually("no function process left orphaned", within: .seconds(5), every: .milliseconds(100)) {
                    Self.orphanedFunctionProcesses().isEmpty
                }) != nil
                #expect(clean, "orphaned: \(Self.orphanedFunctionProcesses())")
            }
        }
    }
}
