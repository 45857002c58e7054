import ChunkRelayServer
import ChunkRelayTesting
import ArgumentParser
import AsyncHTTPClient
import Foundation
import Logging
import NIOCore

/// `chunkrelay invoke`: call a function through the runtime's Lambda Invoke API and print its response.
struct InvokeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "invoke",
        abstract: "Invoke a function directly (Lambda Invoke API, RequestResponse) and print its response.",
        discussion: """
            With --template (as sam local invoke), the function runs in this process for the one invocation; \
            without it, through the runtime of a running `serve`. The invocation's log goes to stderr, the \
            response to stdout.
            """
    )

    @Argument(help: "The function's name (a template's logical id).") var name: String
    @Option(help: "The event as JSON.") var payload = "{}"
    @Option(name: [.customShort("e"), .customLong("event")], help: "A file holding the event (instead of --payload).") var event: String?
    @Option(help: "The local runtime's URL (without --template).") var runtime = "http://127.0.0.1:9001"
    @Option(name: .customLong("functions"), help: "With --template: the folder of function.json functions that also run.")
    var functionsDirectory = "functions"
    @OptionGroup var templateOptions: TemplateOptions

    func run() async throws {
        var body = ByteBuffer(string: payload)
        if let event {
            do {
                body = ByteBuffer(bytes: try Data(contentsOf: URL(fileURLWithPath: event)))
            } catch {
                throw ExitMessage("error: cannot read the event file \(event): \(error.localizedDescription)")
            }
        }
        guard templateOptions.template != nil else {
            return try await invoke(body, at: runtime)
        }
        let template = try templateOptions.checked()
        let event = body
        try await withChunkRelay(
            functions: URL(fileURLWithPath: functionsDirectory, isDirectory: true), configure: { template.apply(to: &$0) }, logLevel: .warning
        ) { relay in
            try await invoke(event, at: relay.runtimeURL)
        }
    }

    private func invoke(_ payload: ByteBuffer, at runtime: String) async throws {
        var request = HTTPClientRequest(url: "\(runtime)/2015-03-31/functions/\(name)/invocations")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "X-Amz-Invocation-Type", value: "RequestResponse")
        request.headers.add(name: "X-Amz-Log-Type", value: "Tail")
        request.body = .bytes(payload)
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(960))
        let body = String(buffer: try await response.body.collect(upTo: 7 << 20))
        // As `sam local invoke`: the invocation's log (START … END, REPORT) on stderr, the response on stdout.
        if let tail = response.headers.first(name: "X-Amz-Log-Result"), let log = Data(base64Encoded: tail) {
            FileHandle.standardError.write(log)
        }
        print(body)
        if let error = response.headers.first(name: "X-Amz-Function-Error") {
            throw ExitMessage("function error (\(error))")
        }
        guard response.status == .ok else {
            throw ExitMessage("runtime answered \(response.status.code) \(response.headers.first(name: "x-amzn-ErrorType") ?? "")")
        }
    }
}
