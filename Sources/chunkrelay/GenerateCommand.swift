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
    @Option(help: "retrieve (the image once, by key) or stream.") var delivery: DeliveryMode = .retrieve
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
        guard delivery == .retrieve else {
            throw ValidationError("--delivery stream is not available in this build yet; use retrieve")
        }
        let client = RelayClient(baseURL: server)
        let file = URL(fileURLWithPath: out)
        let started = ContinuousClock.now
        do {
            let created = try await client.createJob(CreateJobRequest(function: function, params: parameters, delivery: .retrieve))
            print("job \(created.id) created; image will be at \(server)\(created.image ?? "")")
            let status = try await client.waitUntilReady(created.id) { status in
                switch status.state {
                case .queued: print("queued, position \(status.position ?? 0)")
                case .running: print("running: \(status.chunks) chunks, \(Self.megabytes(status.bytes)) received")
                case .ready: print("ready: \(Self.megabytes(status.bytes)) in \(status.chunks) chunks, sha256 \(status.sha256 ?? "?")")
                default: print(status.state.rawValue)
                }
            }
            guard let image = created.image, let sha256 = status.sha256 else {
                throw RelayClientError(status: 0, code: "no_image", message: "the job has no image")
            }
            let retrieved = try await client.retrieve(imagePath: image, expectedSHA256: sha256, to: file)
            let elapsed = ContinuousClock.now - started
            print("wrote \(out): \(retrieved.bytes) bytes (\(retrieved.contentType)), sha256 \(retrieved.sha256) verified, in \(elapsed.formatted(.units(allowed: [.seconds, .milliseconds], width: .narrow)))")
        } catch let error as RelayClientError {
            throw ExitMessage("error: \(error)")
        }
    }

    static func megabytes(_ bytes: Int64) -> String {
        String(format: "%.1f MB", Double(bytes) / 1_000_000)
    }
}

extension DeliveryMode: ExpressibleByArgument {}

/// An error printed as it is, with exit status 1.
struct ExitMessage: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
