import AsyncHTTPClient
import Foundation
import NIOCore
import RelayClient
import RelayProtocol
import TestSupport
import Testing

extension EndToEnd {
    /// The page at `/` in a real browser: headless Chromium runs it, its `EventSource` receives the
    /// chunks, and it verifies the image with `crypto.subtle.digest`.
    @Suite(.timeLimit(.minutes(10))) struct BrowserTests {
        static let chromium: String? = executableInPath(["chromium", "chromium-browser", "google-chrome"])

        /// The page is served for every path but the API's: an API path Hummingbird's file middleware would
        /// refuse (it answers 400 to any `..`) gets its operation's own documented answer (schemathesis found it).
        @Test func thePageDoesNotShadowTheAPI() async throws {
            try await withChunkRelay { gateway, _ in
                let page = try await HTTPClient.shared.execute(HTTPClientRequest(url: gateway + "/"), timeout: .seconds(30))
                #expect(page.status.code == 200)
                for head in [false, true] {
                    var request = HTTPClientRequest(url: gateway + "/v1/images/0..0")
                    request.method = head ? .HEAD : .GET
                    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
                    let body = try await response.body.collect(upTo: 1 << 16)
                    #expect(response.status.code == 404, "\(head ? "HEAD" : "GET")")
                    if !head { #expect(String(buffer: body).contains("image_not_found")) }
                }
                let job = try await HTTPClient.shared.execute(HTTPClientRequest(url: gateway + "/v1/jobs/a..b"), timeout: .seconds(30))
                #expect(job.status.code == 404)
            }
        }

        /// `stream`: the job's events through the gateway; `direct`: the page's EventSource pointed straight
        /// at map-render's Function URL (another origin: CORS).
        @Test(.enabled(if: chromium != nil || runningInCI, "needs Chromium (CI installs it)"), arguments: ["stream", "direct"])
        func thePageAssemblesAndVerifiesAStreamedMap(delivery: String) async throws {
            let browser = try #require(Self.chromium, "Chromium is not installed")
            try await withChunkRelay { gateway, _ in
                let page = try await HTTPClient.shared.execute(HTTPClientRequest(url: gateway + "/"), timeout: .seconds(30))
                #expect(page.status.code == 200)
                #expect(page.headers.first(name: "Content-Type")?.hasPrefix("text/html") == true)

                let profile = FileManager.default.temporaryDirectory.appendingPathComponent("chromium-\(UUID().uuidString)")
                defer { try? FileManager.default.removeItem(at: profile) }
                let url = "\(gateway)/?width=1536&height=1024&seed=11&delivery=\(delivery)&autostart=1"
                // --dump-dom prints the DOM once the page is idle; the virtual-time budget lets the job finish first.
                let result = try await run([
                    browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--user-data-dir=\(profile.path)",
                    "--virtual-time-budget=120000", "--dump-dom", url,
                ])
                let dom = result.output
                let state = Self.attribute("data-state", of: "result", in: dom)
                #expect(state == "verified", "page said: \(Self.element("result", in: dom) ?? dom.suffix(2000).description)")
                #expect(Self.attribute("data-delivery", of: "result", in: dom) == delivery)
                // Drawn while the chunks came in, then replaced by the verified whole.
                #expect(Self.attribute("data-partial", of: "map", in: dom) == nil, "the verified map, not a partial one")
                #expect(Self.attribute("src", of: "map", in: dom)?.hasPrefix("blob:") == true)
                // 1536×1024 is about 1.6 MB: two 1 MiB chunks, each drawn as it came.
                #expect(Self.attribute("data-draws", of: "map", in: dom) == "2", "\(Self.attribute("data-draws", of: "map", in: dom) ?? "no draws")")
                let pageDigest = try #require(Self.attribute("data-sha256", of: "result", in: dom))

                // The gateway's digest of the same map (any delivery mode gives the same bytes).
                let out = FileManager.default.temporaryDirectory.appendingPathComponent("browser-\(UUID().uuidString).png")
                defer { try? FileManager.default.removeItem(at: out) }
                let image = try await RelayClient(baseURL: gateway).generate(
                    CreateJobRequest(function: "map-render", params: ["width": .number(1536), "height": .number(1024), "seed": .number(11)]), to: out)
                #expect(pageDigest == image.sha256)
            }
        }

        static func element(_ id: String, in html: String) -> String? {
            guard let start = html.range(of: "id=\"\(id)\"") else { return nil }
            let tagStart = html[..<start.lowerBound].lastIndex(of: "<") ?? start.lowerBound
            let end = html[start.upperBound...].range(of: "</")?.lowerBound ?? html.endIndex
            return String(html[tagStart..<end])
        }

        static func attribute(_ name: String, of id: String, in html: String) -> String? {
            guard let element = element(id, in: html), let start = element.range(of: "\(name)=\"") else { return nil }
            let rest = element[start.upperBound...]
            return rest.firstIndex(of: "\"").map { String(rest[..<$0]) }
        }
    }
}
