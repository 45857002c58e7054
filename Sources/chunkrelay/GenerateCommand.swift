import ChunkRelayServer
import ArgumentParser
import Foundation
import RelayClient
import RelayProtocol

/// `chunkrelay generate`: create a job, show its progress, download and verify the image.
struct GenerateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate an image through a running gateway and write it to a file, SHA-256 verified."
    )

    @Option(help: "The gateway's URL.") var server = "http://127.0.0.1:8080"
    @Option(help: "The generator function, e.g. map-render.") var function: String
    @Option(name: .customLong("param"), help: "A parameter as KEY=VALUE (repeatable); numbers stay numbers.")
    var params: [String] = []
    @Option(help: "retrieve (the image once, by key), stream (events through the gateway) or direct (from the function's own URL).")
    var delivery: Delivery = .retrieve

    /// The gateway's two modes, and direct delivery from the function's Function URL (no job).
    enum Delivery: String, ExpressibleByArgument, CaseIterable {
        case retrieve, stream, direct
    }
    @Option(help: "Where to write the image.") var out: String

    func validate() throws {
        for param in params where !param.contains("=") {
            throw ValidationError("--param takes KEY=VALUE, got '\(param)'")
        }
    }

    func run() async throws {
        var parameters: [String: JSONValue] = [:]
        for param in params {
            let parts = param.split(separator: "=", maxSplits: 1)
            parameters[String(parts[0])] = JSONValue(commandLineValue: parts.count > 1 ? String(parts[1]) : "")
        }
        let client = RelayClient(baseURL: server)
        let file = URL(fileURLWithPath: out)
        let started = ContinuousClock.now
        let display = ProgressDisplay(interactive: isatty(STDOUT_FILENO) == 1)
        do {
            let image: RetrievedImage
            if delivery == .direct {
                // The function's URL, from the gateway's list: no job, the image straight from the function.
                guard let url = try await client.functions().first(where: { $0.name == function })?.url else {
                    throw ExitMessage("error: \(function) has no Function URL (a \"url\" in its function.json); use --delivery retrieve or stream")
                }
                print("direct from \(url)")
                image = try await client.generateDirect(functionURL: url, params: parameters, to: file) { display.show($0) }
            } else {
                image = try await throughTheGateway(client, parameters: parameters, to: file, display: display)
            }
            display.end()
            let elapsed = ContinuousClock.now - started
            print("wrote \(out): \(image.bytes) bytes (\(image.contentType)), sha256 \(image.sha256) verified, in \(elapsed.formatted(.units(allowed: [.seconds, .milliseconds], width: .narrow)))")
        } catch let error as RelayClientError {
            display.end()
            throw ExitMessage("error: \(error)")
        }
    }

    /// A job in the gateway's retrieve or stream mode.
    private func throughTheGateway(_ client: RelayClient, parameters: [String: JSONValue], to file: URL, display: ProgressDisplay) async throws -> RetrievedImage {
        let mode: DeliveryMode = delivery == .stream ? .stream : .retrieve
        let created = try await client.createJob(CreateJobRequest(function: function, params: parameters, delivery: mode))
        if let image = created.image {
            print("job \(created.id) created (retrieve); image will be at \(server)\(image)")
        } else {
            print("job \(created.id) created (stream); events at \(server)\(created.events)")
        }
        switch mode {
        case .stream:
            return try await client.streamImage(created.id, to: file) { display.show($0) }
        case .retrieve:
            let status = try await client.waitUntilReady(created.id) { display.show($0) }
            guard let path = created.image, let sha256 = status.sha256 else {
                throw RelayClientError(status: 0, code: "no_image", message: "the job has no image")
            }
            return try await client.retrieve(imagePath: path, expectedSHA256: sha256, to: file)
        }
    }

    static func megabytes(_ bytes: Int64) -> String {
        String(format: "%.1f MB", Double(bytes) / 1_000_000)
    }
}

/// Prints queue positions and a progress bar: delivered bytes against what the function has uploaded
/// so far (the final size is known only at the end). On a terminal the bar redraws in place.
final class ProgressDisplay: @unchecked Sendable {
    // Only ever called from the one task that consumes the events.
    private let interactive: Bool
    private var uploaded: Int64 = 0
    private var delivered: Int64 = 0
    private var chunks = 0
    private var lastLine = ContinuousClock.now - .seconds(1)
    private var drewBar = false

    init(interactive: Bool) {
        self.interactive = interactive
    }

    func show(_ event: JobEvent) {
        switch event {
        case .queued(let position): line("queued, position \(position)")
        case .started(let attempt): line("started (attempt \(attempt))")
        case .retrying(let attempt, let error):
            delivered = 0
            line("attempt failed (\(error.code): \(error.message)); retrying as attempt \(attempt)")
        case .progress(let count, let bytes):
            uploaded = max(uploaded, bytes)
            chunks = max(chunks, count)
            bar()
        case .chunk(_, let bytes):
            delivered += Int64(bytes.count)
            uploaded = max(uploaded, delivered)
            bar()
        case .ready(_, let bytes, let sha256):
            uploaded = bytes
            line("ready: \(GenerateCommand.megabytes(bytes)), sha256 \(sha256)")
        case .done(let done):
            delivered = done.bytes
            uploaded = done.bytes
            bar(force: true)
            line("done: \(done.chunks) chunks, \(GenerateCommand.megabytes(done.bytes)), sha256 \(done.sha256)")
        case .failed(let error): line("failed: \(error.code): \(error.message)")
        }
    }

    func end() {
        if drewBar && interactive { print("") }
        drewBar = false
    }

    private func line(_ text: String) {
        end()
        print(text)
    }

    private func bar(force: Bool = false) {
        let now = ContinuousClock.now
        guard force || interactive || now - lastLine >= .milliseconds(500) else { return }
        lastLine = now
        let width = 30
        let shown = uploaded > 0 ? min(1, Double(delivered) / Double(uploaded)) : 0
        let filled = Int(shown * Double(width))
        // Before any chunk is delivered (retrieve mode, or a stream still waiting) only the upload moves.
        let text = delivered == 0
            ? "running: \(chunks) chunks, \(GenerateCommand.megabytes(uploaded)) uploaded"
            : "[\(String(repeating: "#", count: filled))\(String(repeating: "-", count: width - filled))] "
                + "\(GenerateCommand.megabytes(delivered)) received of \(GenerateCommand.megabytes(uploaded)) uploaded so far"
        if interactive {
            print("\r\(text)", terminator: "")
            fflush(nil)
            drewBar = true
        } else {
            print(text)
        }
    }
}
