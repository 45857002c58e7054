import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import TestSupport
import RelayClient
import RelayProtocol
import Testing

extension EndToEnd {
    /// Function URLs from real clients (curl, AsyncHTTPClient): the `chaos-url` (BUFFERED) and
    /// `chaos-stream-url` (RESPONSE_STREAM) functions answer HTTP requests as their query asks.
    @Suite(.timeLimit(.minutes(10))) struct FunctionURLTests {
        /// A function's URL, as the Lambda API's `GetFunctionUrlConfig` reports it.
        static func url(of function: String, runtime: String) async throws -> String {
            let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: "\(runtime)/2021-10-31/functions/\(function)/url"), timeout: .seconds(10))
            let body = try await response.body.collect(upTo: 1 << 20)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any], "\(String(buffer: body))")
            return try #require(object["FunctionUrl"] as? String, "\(object)")
        }

        /// `curl -N` of a streamed URL whose function waits after its first piece until a gate file exists
        /// (`&gate=` is added): the shell creates it only once curl has handed over the first byte, so a
        /// response that was buffered would never finish. Returns the head, the body and when the first
        /// byte and the end arrived (nanoseconds).
        static func curlThroughGate(_ url: String, in root: URL) async throws -> (headers: String, body: Data, firstByte: Int64, end: Int64) {
            let gate = root.appendingPathComponent("gate").path
            let script = """
                cd '\(root.path)'
                curl -sSN -D headers '\(url)&gate=\(gate)' | { dd bs=1 count=1 status=none > body; date +%s%N > first; touch gate; cat >> body; date +%s%N > last; }
                exit ${PIPESTATUS[0]}
                """
            let result = try await run(["bash", "-c", script])
            #expect(result.status == 0, "\(result.output)")
            func text(_ name: String) -> String { (try? String(contentsOf: root.appendingPathComponent(name), encoding: .utf8)) ?? "" }
            func instant(_ name: String) -> Int64 { Int64(text(name).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0 }
            return (text("headers"), (try? Data(contentsOf: root.appendingPathComponent("body"))) ?? Data(), instant("first"), instant("last"))
        }

        static func send(_ url: String, method: HTTPMethod = .GET, headers: [(String, String)] = [], body: ByteBuffer? = nil)
            async throws -> (status: Int, headers: HTTPHeaders, body: ByteBuffer)
        {
            var request = HTTPClientRequest(url: url)
            request.method = method
            for (name, value) in headers { request.headers.add(name: name, value: value) }
            if let body { request.body = .bytes(body) }
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
            return (Int(response.status.code), response.headers, try await response.body.collect(upTo: 16 << 20))
        }

        @Test func aBufferedURLHandsTheFunctionAPayload2EventAndAnswersWithItsResponse() async throws {
            try await withChunkRelay { _, runtime in
                let base = try await Self.url(of: "chaos-url", runtime: runtime)
                #expect(base.hasPrefix("http://127.0.0.1:") && base.hasSuffix("/"))
                let answer = try await Self.send(
                    base + "a%20b/c?x=1&x=2&y=z%21", headers: [("Cookie", "a=1; b=2"), ("X-Test", "one"), ("X-Test", "two"), ("User-Agent", "url-test")]
                )
                #expect(answer.status == 200)
                #expect(answer.headers.first(name: "content-type") == "application/json")
                #expect(answer.headers.first(name: "x-chaos") == "echo")
                #expect(answer.headers["set-cookie"] == ["chaos=1"])
                let event = try #require(try JSONSerialization.jsonObject(with: Data(buffer: answer.body)) as? [String: Any], "\(String(buffer: answer.body))")
                #expect(event["version"] as? String == "2.0")
                #expect(event["routeKey"] as? String == "$default")
                #expect(event["rawPath"] as? String == "/a%20b/c")
                #expect(event["rawQueryString"] as? String == "x=1&x=2&y=z%21")
                #expect(event["queryStringParameters"] as? [String: String] == ["x": "1,2", "y": "z!"])
                #expect(event["cookies"] as? [String] == ["a=1", "b=2"])
                let headers = try #require(event["headers"] as? [String: String])
                #expect(headers["x-test"] == "one,two")
                #expect(headers["cookie"] == nil, "cookies move to `cookies`")
                #expect(headers["x-forwarded-proto"] == "http" && headers["x-forwarded-for"] == "127.0.0.1")
                #expect(event["isBase64Encoded"] as? Bool == false)
                #expect(event["body"] == nil, "no body, no field")
                let context = try #require(event["requestContext"] as? [String: Any])
                let http = try #require(context["http"] as? [String: String])
                #expect(http == ["method": "GET", "path": "/a%20b/c", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "url-test"])
                #expect(context["accountId"] as? String == "anonymous")
                #expect((context["apiId"] as? String)?.count == 32 && context["apiId"] as? String == context["domainPrefix"] as? String)
                #expect(context["routeKey"] as? String == "$default" && context["stage"] as? String == "$default")
                #expect(((context["timeEpoch"] as? Int) ?? 0) > 1_700_000_000_000)
                #expect((context["time"] as? String)?.hasSuffix(" +0000") == true)

                // A binary body arrives base64-encoded; a JSON one as text.
                let binary = try await Self.send(base, method: .POST, headers: [("Content-Type", "application/octet-stream")], body: ByteBuffer(bytes: [0, 1, 2, 255]))
                let binaryEvent = try #require(try JSONSerialization.jsonObject(with: Data(buffer: binary.body)) as? [String: Any])
                #expect(binaryEvent["isBase64Encoded"] as? Bool == true && binaryEvent["body"] as? String == "AAEC/w==")
                let text = try await Self.send(base, method: .POST, headers: [("Content-Type", "application/json")], body: ByteBuffer(string: #"{"k":"v"}"#))
                let textEvent = try #require(try JSONSerialization.jsonObject(with: Data(buffer: text.body)) as? [String: Any])
                #expect(textEvent["isBase64Encoded"] as? Bool == false && textEvent["body"] as? String == #"{"k":"v"}"#)
            }
        }

        @Test func errorsAreAnsweredAsLambdaAnswersThem() async throws {
            try await withChunkRelay { _, runtime in
                let base = try await Self.url(of: "chaos-url", runtime: runtime)
                let failed = try await Self.send(base + "?mode=error")
                #expect(failed.status == 502)
                #expect(String(buffer: failed.body) == "Internal Server Error")
                let oversize = try await Self.send(base + "?mode=oversize")
                #expect(oversize.status == 502)
                #expect(oversize.headers.first(name: "x-amzn-ErrorType") == "Function.ResponseSizeTooLarge")
                #expect(String(buffer: oversize.body).contains("Response payload size exceeded maximum allowed payload size"))
                let tooBig = try await Self.send(base, method: .POST, body: ByteBuffer(repeating: 1, count: 6 * 1024 * 1024 + 101))
                #expect(tooBig.status == 413)
                #expect(tooBig.headers.first(name: "x-amzn-ErrorType") == "RequestEntityTooLargeException")
                let justRight = try await Self.send(base, method: .POST, headers: [("Content-Type", "text/plain")], body: ByteBuffer(repeating: 0x61, count: 1000))
                #expect(justRight.status == 200)
                // Past the function's timeout (3 s for chaos-url): Lambda's 502.
                let timedOut = try await Self.send(base + "?mode=sleep&seconds=10")
                #expect(timedOut.status == 502 && String(buffer: timedOut.body) == "Internal Server Error")
            }
        }

        /// chaos-url may run twice at once (reservedConcurrency 2): a third request meanwhile is throttled.
        @Test func aURLBeyondItsConcurrencyIsThrottled() async throws {
            try await withChunkRelay { gateway, runtime in
                let base = try await Self.url(of: "chaos-url", runtime: runtime)
                try await withThrowingTaskGroup(of: Int.self) { group in
                    for _ in 0..<2 { group.addTask { try await Self.send(base + "?mode=sleep&seconds=2").status } }
                    // Both sleepers hold an environment before the third asks (a fresh server: these are the only ones).
                    try await eventually("both sleepers to hold an environment", within: .seconds(20)) {
                        let metrics = try await Self.send(gateway + "/metrics")
                        return String(buffer: metrics.body).contains("chunkrelay_runtime_live_environments 2")
                    }
                    let third = try await Self.send(base)
                    #expect(third.status == 429)
                    #expect(third.headers.first(name: "x-amzn-ErrorType") == "TooManyRequestsException")
                    for try await status in group { #expect(status == 200) }
                }
            }
        }

        @Test func corsIsAppliedAsConfigured() async throws {
            try await withChunkRelay { _, runtime in
                let base = try await Self.url(of: "chaos-url", runtime: runtime)
                let preflight = try await Self.send(
                    base, method: .OPTIONS, headers: [("Origin", "http://allowed.example"), ("Access-Control-Request-Method", "POST")]
                )
                #expect(preflight.status == 200)
                #expect(preflight.headers.first(name: "access-control-allow-origin") == "http://allowed.example")
                #expect(preflight.headers.first(name: "access-control-allow-methods") == "GET,POST")
                #expect(preflight.headers.first(name: "access-control-allow-headers") == "x-test")
                #expect(preflight.headers.first(name: "access-control-max-age") == "300")
                #expect(preflight.body.readableBytes == 0, "answered by the URL, not the function")
                let allowed = try await Self.send(base, headers: [("Origin", "http://allowed.example")])
                #expect(allowed.headers.first(name: "access-control-allow-origin") == "http://allowed.example")
                #expect(allowed.headers.first(name: "access-control-expose-headers") == "x-chaos")
                let other = try await Self.send(base, headers: [("Origin", "http://elsewhere.example")])
                #expect(other.status == 200)
                #expect(other.headers.first(name: "access-control-allow-origin") == nil)
            }
        }

        /// curl -N gets the status, headers and first bytes while the function still runs: chaos waits after
        /// its first chunk until the gate file exists, and the shell creates it only once curl has handed
        /// over the first byte.
        @Test func curlReceivesAStreamedResponseAsTheFunctionWritesIt() async throws {
            try await withChunkRelay { _, runtime in
                try await withScratchDirectory("url-stream") { root in
                    let base = try await Self.url(of: "chaos-stream-url", runtime: runtime)
                    let received = try await Self.curlThroughGate("\(base)?mode=http-stream&status=201&chunks=3&bytes=20000", in: root)
                    let headers = received.headers
                    #expect(headers.hasPrefix("HTTP/1.1 201"), "\(headers)")
                    #expect(headers.lowercased().contains("x-chaos: streamed"))
                    #expect(headers.lowercased().contains("set-cookie: chaos=1; path=/"))
                    #expect(headers.lowercased().contains("content-type: application/octet-stream"))
                    #expect(Array(received.body) == ChaosPattern.streamed(chunks: 3, bytes: 20000), "\(received.body.count) bytes")
                    let (first, last) = (received.firstByte, received.end)
                    #expect(first > 0 && first < last, "the first byte came before the end (\(first) < \(last))")
                }
            }
        }

        /// `serve --aws-streaming-bandwidth`: a 20 MiB streamed Function URL response, fetched with curl,
        /// takes what it would on Lambda (6 MB at full speed, the rest at 2 MB/s: 7.49 s); without the flag
        /// the same response is not held back.
        @Test func aStreamedURLResponseGoesAtLambdasBandwidthWithTheFlag() async throws {
            func fetch(paced: Bool) async throws -> (bytes: Int, seconds: Double) {
                let result = Locked((bytes: 0, seconds: 0.0))
                try await withChunkRelay(configure: { $0.awsStreamingBandwidth = paced }) { _, runtime in
                    let base = try await Self.url(of: "chaos-stream-url", runtime: runtime)
                    let curl = try await run([
                        "curl", "-sS", "-o", "/dev/null", "-w", "%{size_download} %{time_total}", "\(base)?mode=http-stream&chunks=20&bytes=1048576",
                    ])
                    #expect(curl.status == 0, "\(curl.output)")
                    let parts = curl.output.split(separator: " ")
                    result.update { $0 = (Int(parts.first ?? "") ?? -1, Double(parts.last ?? "") ?? -1) }
                }
                return result.value
            }
            let paced = try await fetch(paced: true)
            #expect(paced.bytes == 20 << 20)
            #expect(paced.seconds >= 7.4, "took \(paced.seconds) s")
            let free = try await fetch(paced: false)
            #expect(free.bytes == 20 << 20)
            #expect(free.seconds < 7, "took \(free.seconds) s")
        }

        @Test func aStreamThatFailsMidwayIsCutShortAndOneWithoutAPreludeKeepsItsType() async throws {
            try await withChunkRelay { _, runtime in
                let base = try await Self.url(of: "chaos-stream-url", runtime: runtime)
                // The body ends without its last chunk: curl reports a transfer cut short (exit 18).
                let broken = try await run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", "\(base)?mode=http-stream&chunks=3&bytes=5000&failAfterChunks=1"])
                #expect(broken.status == 18, "\(broken.output)")
                #expect(broken.output.contains("200 5000"), "\(broken.output)")
                let raw = try await Self.send(base + "?mode=raw-stream&chunks=2&bytes=300")
                #expect(raw.status == 200)
                #expect(raw.headers.first(name: "content-type") == "application/x-chaos")
                #expect(Array(raw.body.readableBytesView) == ChaosPattern.streamed(chunks: 2, bytes: 300))
                #expect(raw.headers.first(name: "access-control-allow-origin") == nil, "no Origin, no CORS fields")
                let failedEarly = try await Self.send(base + "?mode=error")
                #expect(failedEarly.status == 502)
            }
        }

        /// map-render's own URL sends the map as Server-Sent Events (the gateway's stream contract) or as
        /// plain bytes: either way the same bytes the gateway's retrieve mode gives for the same parameters.
        @Test func mapRenderDeliversTheMapDirectlyWithTheSameBytesAsRetrieveMode() async throws {
            try await withChunkRelay { gateway, runtime in
                let base = try await Self.url(of: "map-render", runtime: runtime)
                let fixture = (bytes: 601_454, sha256: "5acb74bc85ac32229e4e9249b8505dd83d463341dd0ea708a8a50070ca3c932c")
                let sse = try await Self.send(base + "?width=1000&height=600&seed=42&chunkSize=65536", headers: [("Accept", "text/event-stream")])
                #expect(sse.status == 200)
                #expect(sse.headers.first(name: "content-type") == "text/event-stream")
                var parser = ServerSentEventParser()
                let events = parser.push(sse.body.readableBytesView)
                #expect(events.first?.event == "started")
                var assembled: [UInt8] = []
                for (index, event) in events.filter({ $0.event == "chunk" }).enumerated() {
                    #expect(event.id == String(index))
                    assembled += Array(Data(base64Encoded: event.data, options: .ignoreUnknownCharacters) ?? Data())
                }
                let done = try #require(events.last, "no events")
                #expect(done.event == "done")
                let manifest = try JSONDecoder().decode(ImageManifest.self, from: Data(done.data.utf8))
                #expect(manifest == ImageManifest(chunks: 10, bytes: Int64(fixture.bytes), sha256: fixture.sha256, contentType: "image/png"))
                #expect(ContentDigest(of: Data(assembled)).hex == fixture.sha256)

                let plain = try await Self.send(base + "?width=1000&height=600&seed=42")
                #expect(plain.headers.first(name: "content-type") == "image/png")
                #expect(ContentDigest(of: Data(buffer: plain.body)).hex == fixture.sha256)

                // The gateway's retrieve mode, same parameters, same bytes.
                let file = FileManager.default.temporaryDirectory.appendingPathComponent("direct-\(UUID().uuidString).png")
                defer { try? FileManager.default.removeItem(at: file) }
                let retrieved = try await RelayClient(baseURL: gateway).generate(
                    CreateJobRequest(function: "map-render", params: ["width": .number(1000), "height": .number(600), "seed": .number(42)]), to: file
                )
                #expect(retrieved.sha256 == ContentDigest(of: Data(assembled)).hex)

                // A bad parameter: a `failed` event on the event stream, Lambda's 502 on the plain one.
                let badEvents = try await Self.send(base + "?width=0", headers: [("Accept", "text/event-stream")])
                var badParser = ServerSentEventParser()
                let bad = badParser.push(badEvents.body.readableBytesView)
                #expect(bad.last?.event == "failed" && bad.last?.data.contains("InvalidParameters") == true, "\(bad)")
                #expect(try await Self.send(base + "?width=0").status == 502)
            }
        }


        /// Streaming is not Swift's alone: a Python function written with the standard library only streams
        /// its HTTP response through the same URL machinery, and curl gets the first line while it still runs.
        @Test func aPythonFunctionStreamsItsHTTPResponseToo() async throws {
            try await withChunkRelay { _, runtime in
                try await withScratchDirectory("url-python") { root in
                    let base = try await Self.url(of: "stream-py", runtime: runtime)
                    let received = try await Self.curlThroughGate("\(base)?lines=4", in: root)
                    let headers = received.headers
                    #expect(headers.hasPrefix("HTTP/1.1 200"), "\(headers)")
                    #expect(headers.lowercased().contains("x-runtime: python"))
                    #expect(String(decoding: received.body, as: UTF8.self) == "line 0\nline 1\nline 2\nline 3\n")
                }
            }
        }
    }
}
