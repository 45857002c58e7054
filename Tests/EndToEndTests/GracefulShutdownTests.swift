import AsyncHTTPClient
import Foundation
import NIOCore
import RelayClient
import RelayProtocol
import TestSupport
import Testing

extension EndToEnd {
    /// SIGTERM to the real `chunkrelay serve`: work under way finishes within the grace, what cannot is
    /// put back at the front of the queue, new work is refused meanwhile, and the process exits cleanly.
    @Suite(.timeLimit(.minutes(10))) struct GracefulShutdownTests {
        @Test func sigtermLetsRunningWorkFinishAndRequeuesTheRest() async throws {
            try await withScratchDirectory("shutdown") { root in
                let state = root.appendingPathComponent("state")
                let arguments = ["--max-concurrency", "2", "--shutdown-grace", "8"]
                var server = try await ServeProcess.start(stateDirectory: state, arguments: arguments)
                let client = RelayClient(baseURL: server.gateway)

                // An image ready before the stop, downloaded slowly across it.
                let early = try await client.createJob(CreateJobRequest(function: "map-render", params: CrashRecoveryTests.wide.params))
                _ = try await client.waitUntilReady(early.id)
                let download = try await HTTPClient.shared.execute(HTTPClientRequest(url: "\(server.gateway)\(early.image!)"), timeout: .seconds(60))
                #expect(download.status == .ok)

                // One job that finishes within the grace (a few seconds of rendering and uploading) and one
                // that cannot (it sleeps past the grace), both running when SIGTERM arrives.
                // map-render's default 4096² map (16.8 MB; functions/map-render/fixtures/defaults.json): seconds of work.
                let finishing = try await client.createJob(CreateJobRequest(function: "map-render"))
                let hanging = try await client.createJob(CreateJobRequest(function: "chaos", params: ["mode": .string("sleep"), "seconds": .number(3600)]))
                for id in [finishing.id, hanging.id] {
                    try await eventually("job \(id) to start", within: .seconds(60)) { try await client.job(id).state != .queued }
                }
                #expect(try await client.job(finishing.id).state == .running, "still running when SIGTERM arrives")
                // An event stream open across the stop ends with it instead of holding the server up.
                let watching = try await HTTPClient.shared.execute(
                    HTTPClientRequest(url: "\(server.gateway)/v1/jobs/\(hanging.id)/events"), timeout: .seconds(60))
                var watched = watching.body.makeAsyncIterator()
                var seen = ""
                while !seen.contains("event: started") {
                    guard let part = try await watched.next() else { break }
                    seen += String(buffer: part)
                }
                #expect(seen.contains("event: started"), "\(seen)")
                let stopping = server
                async let exitStatus = stopping.terminate()
                // Draining shows on /healthz (a load balancer takes the instance out of rotation).
                let gateway = server.gateway
                try await eventually("/healthz to answer 503 while draining", within: .seconds(5)) {
                    let health = try await HTTPClient.shared.execute(HTTPClientRequest(url: "\(gateway)/healthz"), timeout: .seconds(5))
                    let body = String(buffer: try await health.body.collect(upTo: 4096))
                    return health.status == .serviceUnavailable && body.contains("shutting_down")
                }

                // New work is refused while draining.
                let refused = try await HTTPClient.shared.execute({
                    var request = HTTPClientRequest(url: "\(server.gateway)/v1/jobs")
                    request.method = .POST
                    request.body = .bytes(ByteBuffer(string: #"{"function":"map-render"}"#))
                    return request
                }(), timeout: .seconds(10))
                #expect(refused.status == .serviceUnavailable)
                #expect(refused.headers.first(name: "Retry-After") == "5")
                #expect(String(buffer: try await refused.body.collect(upTo: 4096)).contains("shutting_down"))

                // The download in flight finishes, whole, while the server stops.
                var received = Data()
                for try await part in download.body {
                    received.append(contentsOf: part.readableBytesView)
                    try await Task.sleep(for: .milliseconds(5))
                }
                #expect(ContentDigest(of: received).hex == CrashRecoveryTests.wide.sha256)

                #expect(await exitStatus == 0)
                // The stream was ended by the server, cleanly, not cut off with the process.
                await #expect(throws: Never.self) { while try await watched.next() != nil {} }

                let log = (try? String(contentsOf: server.log, encoding: .utf8)) ?? ""
                #expect(log.contains("put 1 unfinished job(s) back at the front of the queue"), "\(log.suffix(3000))")
                // The gateway logs "retrying as attempt N" when it rolls an attempt back for a retry: stopping
                // must not start one (the hanging job goes back to the queue instead).
                #expect(!log.contains("retrying as attempt"), "no retry was started while stopping")

                // After a restart: the job that finished is retrievable, the consumed key stays consumed, the
                // requeued one runs again as a new attempt.
                server = try await ServeProcess.start(stateDirectory: state, port: server.gatewayPort, arguments: arguments)
                let finished = try await client.job(finishing.id)
                #expect(finished.state == .ready, "\(finished)")
                #expect(finished.attempts == 1, "it finished during the grace, not after a restart")
                let file = try await client.retrieve(
                    imagePath: finishing.image!, expectedSHA256: "30f800d1d5ebff9f84941ed647a37e2478872907ac3376546a4a19118de0c929",
                    to: root.appendingPathComponent("f.png"))
                #expect(file.bytes == 16_783_593)
                let again = try await HTTPClient.shared.execute(HTTPClientRequest(url: "\(server.gateway)\(early.image!)"), timeout: .seconds(10))
                #expect(again.status == .gone)
                let requeued = try await client.job(hanging.id)
                #expect(requeued.attempts == 2 && requeued.state == .running, "\(requeued)")
                _ = try await client.cancel(hanging.id)
                #expect(await server.terminate() == 0)
            }
        }
    }
}
