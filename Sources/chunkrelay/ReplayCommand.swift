import ArgumentParser
import AsyncHTTPClient
import ChunkRelayServer
import Foundation
import NIOCore

/// `chunkrelay replay ID`: runs a job or an invocation again with the same payload, through a running
/// gateway's inspector API.
struct ReplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Run a job (by job id) or an invocation (by request id) again with the same payload.",
        discussion: """
            A job again is a new job with the same function, params and delivery; an invocation that worked \
            for a job replays that job; any other invocation is sent again as an asynchronous (Event) \
            invocation. Prints the new job's id and where to follow it. The ids are those /inspect shows.
            """
    )

    @Argument(help: "A job id or an invocation's request id.") var id: String
    @Option(help: "The gateway's URL.") var server = "http://127.0.0.1:8080"
    @Option(help: "The inspector token, when the gateway is on another machine (serve --inspector-token).") var token: String?

    func run() async throws {
        let base = server.hasSuffix("/") ? String(server.dropLast()) : server
        var request = HTTPClientRequest(url: "\(base)/inspect/api/replay/\(id)")
        request.method = .POST
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1 << 20)
        guard response.status == .accepted, let replay = try? JSONDecoder().decode(InspectorReplay.self, from: Data(body.readableBytesView)) else {
            throw ExitMessage("replay refused: \(response.status.code) \(String(buffer: body))")
        }
        if let job = replay.job {
            print("job \(job.id) queued: follow \(base)\(job.events), or \(base)/inspect?job=\(job.id)")
            if let image = job.image { print("image (once ready): \(base)\(image)") }
        } else {
            let detail = replay.requestId.map { "?invocation=\($0)" } ?? ""
            print("\(replay.function ?? id) invoked again (Event): see \(base)/inspect\(detail)")
        }
    }
}
