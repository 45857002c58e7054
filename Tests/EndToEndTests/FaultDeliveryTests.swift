import Crypto
import FaultInjection
import Foundation
import RelayClient
import RelayProtocol
import TestSupport
import Testing

@testable import ChunkRelayBench
@testable import chunkrelay

extension EndToEnd {
    /// Faults on demand as a user meets them: the real `serve --faults`, the shipped fixture that breaks
    /// its deliveries, real clients that resume (RelayClient, the Python sample) and one that does not (curl).
    @Suite(.timeLimit(.minutes(10))) struct FaultDeliveryTests {
        static let map = (params: ["width": JSONValue.number(2000), "height": .number(2000)], bytes: 4_003_150,
                          sha256: "07adfc03e42d4ebce90f372df91e550b5281afae7572291168e1f249f0759b2b")

        static func curl(_ arguments: [String]) async throws -> (status: Int32, output: String) {
            try await run(["curl", "-sS", "--max-time", "60"] + arguments)
        }

        @Test func theFixtureThatBreaksItsDeliveriesPassesAndTheSameFaultFailsAClientThatDoesNotResume() async throws {
            try await withScratchDirectory("faults-fixture") { root in
                let serve = try await ServeProcess.start(stateDirectory: root.appendingPathComponent("state"), arguments: ["--faults"])
                defer { serve.child.signal(SIGKILL) }
                let fixture = try await run([ServeProcess.binary.path, "test", "--server", serve.gateway, "map-render/dropped-connections"])
                #expect(fixture.status == 0, "\(fixture.output)")
                #expect(fixture.output.contains("2 runs: 2 passed"), "\(fixture.output)")
                let log = try String(contentsOf: serve.log, encoding: .utf8)
                #expect(log.contains("fault injected (header): reset-after=1048576 on gateway GET /v1/images/"), "the download was broken")
                #expect(log.contains("fault injected (header): reset-after=2097152 on gateway GET /v1/jobs/"), "the event stream was broken")

                // curl does not resume: the same fault leaves it with a part, and an error.
                let client = RelayClient(baseURL: serve.gateway)
                let job = try await client.createJob(CreateJobRequest(function: "map-render", params: Self.map.params))
                _ = try await client.waitUntilReady(job.id)
                let url = serve.gateway + (try #require(job.image))
                let part = root.appendingPathComponent("part.png")
                let broken = try await Self.curl(["-o", part.path, "-H", "\(FaultInjector.headerName): reset-after=1MiB", url])
                #expect(broken.status != 0, "curl without retries must fail: \(broken.output)")
                #expect(broken.output.contains("reset") || broken.output.contains("Recv failure"), "\(broken.output)")
                let partial = (try? Data(contentsOf: part).count) ?? 0
                #expect(partial <= 1 << 20 && partial < Self.map.bytes)
                // The key was not spent on a broken transfer: the whole image is still there, once.
                let whole = root.appendingPathComponent("whole.png")
                let fetched = try await Self.curl(["-f", "-o", whole.path, url])
                #expect(fetched.status == 0, "\(fetched.output)")
                #expect(ContentDigest(of: try Data(contentsOf: whole)).hex == Self.map.sha256)
                let again = try await Self.curl(["-o", "/dev/null", "-w", "%{http_code}", url])
                #expect(again.output.hasSuffix("410"), "\(again.output)")
            }
        }

        @Test func aFunctionURLTakesFaultsToo() async throws {
            try await withScratchDirectory("faults-url") { root in
                let serve = try await ServeProcess.start(stateDirectory: root.appendingPathComponent("state"), arguments: ["--faults"])
                defer { serve.child.signal(SIGKILL) }
                let client = RelayClient(baseURL: serve.gateway)
                let url = try #require(try await client.functions().first { $0.name == "map-render" }?.url)
                // Lambda's throttle, in Lambda's shape, with the Retry-After the fault asked for.
                let throttled = try await Self.curl(["-i", "-H", "\(FaultInjector.headerName): status=429, retry-after=4", url + "?width=64&height=64"])
                #expect(throttled.output.contains("HTTP/1.1 429"), "\(throttled.output)")
                #expect(throttled.output.lowercased().contains("x-amzn-errortype: toomanyrequestsexception"), "\(throttled.output)")
                #expect(throttled.output.contains("Retry-After: 4"), "\(throttled.output)")
                // A streamed response cut short: direct delivery cannot resume, and says so rather than
                // handing out a part.
                let file = root.appendingPathComponent("direct.png")
                await #expect(throws: (any Error).self) {
                    try await client.generateDirect(
                        functionURL: url, params: Self.map.params, to: file, headers: [FaultInjector.headerName: "close-after=100KiB"])
                }
                #expect(!FileManager.default.fileExists(atPath: file.path))
                // Without a fault the same request gives the verified image.
                let image = try await client.generateDirect(functionURL: url, params: Self.map.params, to: file)
                #expect(image.sha256 == Self.map.sha256)
            }
        }

        @Test func aServeWithoutFaultsIgnoresTheHeader() async throws {
            try await withScratchDirectory("faults-off") { root in
                let serve = try await ServeProcess.start(stateDirectory: root.appendingPathComponent("state"))
                defer { serve.child.signal(SIGKILL) }
                let client = RelayClient(baseURL: serve.gateway)
                let job = try await client.createJob(CreateJobRequest(function: "map-render", params: Self.map.params))
                _ = try await client.waitUntilReady(job.id)
                let whole = root.appendingPathComponent("whole.png")
                let fetched = try await Self.curl(["-f", "-o", whole.path, "-H", "\(FaultInjector.headerName): reset-after=1KiB", serve.gateway + (try #require(job.image))])
                #expect(fetched.status == 0, "\(fetched.output)")
                #expect(ContentDigest(of: try Data(contentsOf: whole)).hex == Self.map.sha256)
                #expect(!(try String(contentsOf: serve.log, encoding: .utf8)).contains("fault injected"))
            }
        }

        @Test(.enabled("needs httpx and httpx-sse (CI installs them)") { await SamplesTests.python() != nil || runningInCI })
        func thePythonSampleResumesThroughBrokenConnections() async throws {
            let python = try #require(await SamplesTests.python(), "httpx-sse is not installed")
            try await withScratchDirectory("faults-python") { root in
                let serve = try await ServeProcess.start(stateDirectory: root.appendingPathComponent("state"), arguments: ["--faults"])
                defer { serve.child.signal(SIGKILL) }
                let script = repositoryRoot.appendingPathComponent("samples/python/generate.py").path
                for (delivery, fault) in [("retrieve", "reset-after=1MiB"), ("stream", "reset-after=2MiB")] {
                    let out = root.appendingPathComponent("\(delivery).png")
                    let result = try await run([python, script, "--server", serve.gateway, "--out", out.path, "--delivery", delivery, "--fault", fault, "width=2000", "height=2000"])
                    #expect(result.status == 0, "\(delivery): \(result.output)")
                    #expect(result.output.contains("broke off"), "\(delivery) met the fault: \(result.output)")
                    #expect(ContentDigest(of: try Data(contentsOf: out)).hex == Self.map.sha256, "\(delivery)")
                }
            }
        }
    }
}
