import AsyncHTTPClient
import Foundation
import NIOCore
import RelayClient
import RelayProtocol
import TestSupport
import Testing

@testable import ChunkRelayBench
@testable import ChunkRelayServer

extension EndToEnd {
    /// `/inspect` as a user opens it: headless Chromium on the live page while jobs run, the API it reads,
    /// replay from the CLI, and who is let in.
    @Suite(.timeLimit(.minutes(10))) struct InspectorTests {
        static let node = executableInPath(["node"])
        static let map = (params: ["width": JSONValue.number(2000), "height": .number(2000)], sha256: "07adfc03e42d4ebce90f372df91e550b5281afae7572291168e1f249f0759b2b")

        /// Loads `url` in headless Chromium until `condition` (JavaScript) holds; returns the DOM then.
        static func page(_ url: String, until condition: String, screenshot: URL? = nil) async throws -> (held: Bool, dom: String) {
            let browser = try #require(BrowserTests.chromium, "Chromium is not installed")
            let node = try #require(Self.node, "Node.js is not installed")
            let dom = FileManager.default.temporaryDirectory.appendingPathComponent("inspect-\(UUID().uuidString).html")
            defer { try? FileManager.default.removeItem(at: dom) }
            let script = repositoryRoot.appendingPathComponent("Tests/Browser/cdp.mjs").path
            let result = try await run([node, "--experimental-websocket", script, browser, url, condition, dom.path] + (screenshot.map { [$0.path] } ?? [""]) + ["60"])
            return (result.status == 0, (try? String(contentsOf: dom, encoding: .utf8)) ?? result.output)
        }

        static func get(_ url: String, headers: [(String, String)] = []) async throws -> (status: Int, body: String) {
            var request = HTTPClientRequest(url: url)
            for (name, value) in headers { request.headers.add(name: name, value: value) }
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
            return (Int(response.status.code), String(buffer: try await response.body.collect(upTo: 16 << 20)))
        }

        static func snapshot(_ gateway: String) async throws -> InspectorSnapshot {
            try JSONDecoder().decode(InspectorSnapshot.self, from: Data(try await get(gateway + "/inspect/api/snapshot").body.utf8))
        }

        @Test(.enabled(if: (BrowserTests.chromium != nil && node != nil) || runningInCI, "needs Chromium and Node.js (CI has them)"))
        func thePageShowsTheLiveQueueAJobsChunksAnInvocationsReportAndAReplayMakesTheSameImage() async throws {
            try await withScratchDirectory("inspector") { root in
                let serve = try await ServeProcess.start(stateDirectory: root.appendingPathComponent("state"), arguments: ["--max-concurrency", "1"])
                defer { serve.child.signal(SIGKILL) }
                let client = RelayClient(baseURL: serve.gateway)
                let map = try await client.createJob(CreateJobRequest(function: "map-render", params: Self.map.params))
                let ready = try await client.waitUntilReady(map.id)
                #expect(ready.sha256 == Self.map.sha256)
                let invocation = try #require(try await Self.snapshot(serve.gateway).invocations.first { $0.jobId == map.id })

                // One job holds the only slot; two wait behind it.
                let sleeper = try await client.createJob(CreateJobRequest(function: "chaos", params: ["mode": .string("sleep"), "seconds": .number(60)]))
                try await eventually("the sleeper runs", within: .seconds(30)) { try await client.job(sleeper.id).state == .running }
                for _ in 0..<2 { _ = try await client.createJob(CreateJobRequest(function: "map-render", params: ["width": .number(300), "height": .number(300)])) }

                // A third joins the queue after the page has loaded: only the live stream can tell it.
                async let late: Void = {
                    try await Task.sleep(for: .seconds(3))
                    _ = try await client.createJob(CreateJobRequest(function: "map-render", params: ["width": .number(310), "height": .number(310)]))
                }()
                let shot = root.appendingPathComponent("inspect-job.png")
                let jobPage = try await Self.page(
                    "\(serve.gateway)/inspect?job=\(map.id)",
                    until: "document.getElementById('queue').dataset.count === '3' && document.getElementById('timeline')", screenshot: shot)
                try await late
                #expect(jobPage.held, "the page did not show three queued jobs: \(BrowserTests.element("queue", in: jobPage.dom) ?? jobPage.dom.suffix(3000).description)")
                #expect(BrowserTests.attribute("data-count", of: "queue", in: jobPage.dom) == "3")
                #expect(jobPage.dom.contains(#"class="badge live""#), "the page's event stream is live")
                // The job's chunks, each as it arrived, then completion.
                #expect(BrowserTests.attribute("data-chunks", of: "chunk-bar", in: jobPage.dom) == "4")
                for chunk in 0..<4 { #expect(jobPage.dom.contains("chunk \(chunk) stored"), "chunk \(chunk) on the timeline") }
                #expect(jobPage.dom.contains("attempt 1 completed: 4 chunks, 4003150 bytes verified"))
                #expect(jobPage.dom.contains(Self.map.sha256))
                #expect(try Data(contentsOf: shot).count > 10_000, "a screenshot was taken")

                let invocationPage = try await Self.page(
                    "\(serve.gateway)/inspect?invocation=\(invocation.requestId)",
                    until: "(document.getElementById('log') || {}).textContent && document.getElementById('log').textContent.includes('REPORT RequestId')")
                #expect(invocationPage.held, "\(invocationPage.dom.suffix(3000))")
                let log = try #require(BrowserTests.element("log", in: invocationPage.dom))
                #expect(log.contains("START RequestId: \(invocation.requestId)"))
                #expect(log.contains("END RequestId: \(invocation.requestId)"))
                #expect(log.contains("REPORT RequestId: \(invocation.requestId)\tDuration: ") && log.contains("Billed Duration: "), "\(log)")

                // Replay from the command line: a new job, the same image.
                _ = try await client.cancel(sleeper.id)
                let replayed = try await run([ServeProcess.binary.path, "replay", map.id, "--server", serve.gateway])
                #expect(replayed.status == 0, "\(replayed.output)")
                let newID = try #require(replayed.output.split(separator: " ").dropFirst().first.map(String.init), "\(replayed.output)")
                #expect(newID != map.id)
                #expect(try await client.waitUntilReady(newID).sha256 == Self.map.sha256)
                // An invocation that worked for a job replays the job.
                let again = try await Self.post(serve.gateway + "/inspect/api/replay/\(invocation.requestId)")
                #expect(again.status == 202 && again.body.contains(#""kind":"job""#), "\(again.body)")
            }
        }

        @Test func aReplayedInvocationRunsAgainUnderANewRequestIdTheReplayNames() async throws {
            try await withChunkRelay { gateway, runtime in
                var invoke = HTTPClientRequest(url: "\(runtime)/2015-03-31/functions/chaos/invocations")
                invoke.method = .POST
                invoke.body = .bytes(ByteBuffer(string: #"{"mode":"echo","mark":"replay-me"}"#))
                let first = try await HTTPClient.shared.execute(invoke, timeout: .seconds(30))
                _ = try await first.body.collect(upTo: 1 << 20)
                let original = try #require(first.headers.first(name: "x-amzn-RequestId"))

                let replay = try await Self.post(gateway + "/inspect/api/replay/\(original)")
                #expect(replay.status == 202, "\(replay.body)")
                let started = try JSONDecoder().decode(InspectorReplay.self, from: Data(replay.body.utf8))
                #expect(started.kind == "invocation" && started.function == "chaos")
                let again = try #require(started.requestId)
                #expect(again != original)
                try await eventually("the replayed invocation to succeed") {
                    let detail = try await Self.get(gateway + "/inspect/api/invocations/\(again)")
                    return detail.status == 200 && detail.body.contains(#""status":"success""#) && detail.body.contains("replay-me")
                }
            }
        }

        static func post(_ url: String) async throws -> (status: Int, body: String) {
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
            return (Int(response.status.code), String(buffer: try await response.body.collect(upTo: 1 << 20)))
        }

        @Test func theAPINeverShowsAFullKeyOrToken() async throws {
            try await withChunkRelay { gateway, _ in
                let client = RelayClient(baseURL: gateway)
                let job = try await client.createJob(CreateJobRequest(function: "map-render", params: ["width": .number(300), "height": .number(300)]))
                _ = try await client.waitUntilReady(job.id)
                let key = try #require(job.image?.split(separator: "/").last.map(String.init))
                let snapshot = try await Self.get(gateway + "/inspect/api/snapshot")
                let detail = try await Self.get(gateway + "/inspect/api/jobs/\(job.id)")
                let requestId = try #require(try await Self.snapshot(gateway).invocations.first { $0.jobId == job.id }?.requestId)
                let invocation = try await Self.get(gateway + "/inspect/api/invocations/\(requestId)")
                let page = try await Self.get(gateway + "/inspect")
                for (name, body) in [("snapshot", snapshot.body), ("job", detail.body), ("invocation", invocation.body), ("page", page.body)] {
                    #expect(!body.contains(key), "\(name) shows the live key")
                }
                #expect(detail.body.contains("/v1/images/\(key.prefix(4))…"))
                // The function's event had its upload token: shown cut short.
                let record = try JSONDecoder().decode(LocalRuntimeRecord.self, from: Data(invocation.body.utf8))
                let event = try JSONDecoder().decode([String: JSONValue].self, from: Data(record.payload.utf8))
                guard case .string(let token)? = event["uploadToken"] else { throw TestFailure("no uploadToken in \(record.payload)") }
                #expect(token.count == 5 && token.hasSuffix("…"), "\(token)")
                #expect(try await Self.get(gateway + "/inspect/api/jobs/\(RandomToken.make())").status == 404)
                #expect(try await Self.get(gateway + "/inspect/api/invocations/nope").status == 404)
                // One attempt (the job's function succeeded at once): it is attempt 1, and there is no second.
                #expect(try await Self.get(gateway + "/inspect/api/invocations/\(requestId)?attempt=1").body == invocation.body)
                #expect(try await Self.get(gateway + "/inspect/api/invocations/\(requestId)?attempt=2").status == 404)
                #expect(try await Self.get(gateway + "/inspect/api/invocations/\(requestId)?attempt=0").status == 400)
                #expect(try await Self.get(gateway + "/inspect/api/invocations/\(requestId)?attempt=-1").status == 400)
                #expect(try await Self.get(gateway + "/inspect/api/invocations/\(requestId)?attempt=one").status == 400)
                // The document says any whole number from 1: one past Int's range is an attempt that never ran.
                #expect(try await Self.get(gateway + "/inspect/api/invocations/\(requestId)?attempt=158756697939813858469274976256").status == 404)
                #expect(record.attempt == 1)
            }
        }

        /// An IPv4 address of this machine's that is not loopback: a client connecting to it is not on loopback.
        static func nonLoopbackIPv4() -> String? {
            var list: UnsafeMutablePointer<ifaddrs>?
            guard getifaddrs(&list) == 0, let first = list else { return nil }
            defer { freeifaddrs(list) }
            for entry in sequence(first: first, next: { $0.pointee.ifa_next }) {
                guard let address = entry.pointee.ifa_addr, address.pointee.sa_family == sa_family_t(AF_INET) else { continue }
                let ip = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
                var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
                var copy = ip
                guard inet_ntop(AF_INET, &copy, &text, socklen_t(text.count)) != nil else { continue }
                let result = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                if !result.hasPrefix("127.") { return result }
            }
            return nil
        }

        /// The invocation record as the API writes it (only what this test reads).
        struct LocalRuntimeRecord: Decodable {
            var payload: String
            var attempt: Int
        }

        @Test func theInspectorAnswersThisMachineOnlyUnlessGivenItsToken() async throws {
            guard let outside = Self.nonLoopbackIPv4() else {
                #expect(!runningInCI, "CI machines have a non-loopback address")
                return
            }
            try await withScratchDirectory("inspector-access") { root in
                for token in [nil, "s3cret-token"] as [String?] {
                    let serve = try await ServeProcess.start(
                        stateDirectory: root.appendingPathComponent("state-\(token ?? "none")"), arguments: ["--host", "0.0.0.0"] + (token.map { ["--inspector-token", $0] } ?? []))
                    defer { serve.child.signal(SIGKILL) }
                    let there = "http://\(outside):\(serve.gatewayPort)"
                    // The API for clients is open to the network as before; the inspector is not.
                    #expect(try await Self.get(there + "/v1/functions").status == 200)
                    for path in ["/inspect", "/inspect/api/snapshot", "/inspect/api/events"] {
                        let refused = try await Self.get(there + path)
                        #expect(refused.status == 403, "\(path): \(refused.body)")
                        #expect(refused.body.contains("inspector_forbidden"))
                    }
                    var replay = HTTPClientRequest(url: there + "/inspect/api/replay/\(RandomToken.make())")
                    replay.method = .POST
                    #expect(try await HTTPClient.shared.execute(replay, timeout: .seconds(10)).status.code == 403)
                    #expect(try await Self.get(serve.gateway + "/inspect/api/snapshot").status == 200, "loopback is let in")
                    if let token {
                        #expect(try await Self.get(there + "/inspect/api/snapshot", headers: [("Authorization", "Bearer \(token)")]).status == 200)
                        #expect(try await Self.get(there + "/inspect?token=\(token)").status == 200)
                        #expect(try await Self.get(there + "/inspect/api/snapshot", headers: [("Authorization", "Bearer s3cret-tokem")]).status == 403)
                    } else {
                        #expect(try await Self.get(there + "/inspect/api/snapshot").body.contains("--inspector-token"))
                    }
                }
            }
        }
    }
}
