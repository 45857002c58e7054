import ChunkRelayServer
import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore

/// `chunkrelay invoke`: call a function through the runtime's Lambda Invoke API and print its response.
struct InvokeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "invoke",
        abstract: "Invoke a function directly (Lambda Invoke API, RequestResponse) and print its response."
    )

    @Argument(help: "The function's name.") var name: String
    @Option(help: "The event as JSON.") var payload = "{}"
    @Option(help: "The local runtime's URL.") var runtime = "http://127.0.0.1:9001"

    func run() async throws {
        var request = HTTPClientRequest(url: "\(runtime)/2015-03-31/functions/\(name)/invocations")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "X-Amz-Invocation-Type", value: "RequestResponse")
        request.headers.add(name: "X-Amz-Log-Type", value: "Tail")
        request.body = .bytes(ByteBuffer(string: payload))
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
