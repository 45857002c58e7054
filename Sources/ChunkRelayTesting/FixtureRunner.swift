import Foundation
import Synchronization
import RelayClient
import RelayProtocol

/// Runs fixture cases through a live gateway (each delivery the real flow: a job, the function, the
/// chunks, the verified image) and checks what came out against each case's expectation.
///
/// ```swift
/// try await withChunkRelay(functions: URL(fileURLWithPath: "functions")) { relay in
///     let results = try await FixtureRunner(client: relay.client).run(try Fixture.load(functions: URL(fileURLWithPath: "functions")))
///     #expect(results.allSatisfy(\.passed))
/// }
/// ```
public struct FixtureRunner: Sendable {
    /// The gateway's client.
    public var client: RelayClient
    /// Whether a case without `expect` gets one written from what its first delivery produced.
    public var record: Bool
    /// Where images are kept (`<function>-<case>-<delivery>.<ext>`); nil keeps none.
    public var outputDirectory: URL?

    /// Makes a runner.
    public init(client: RelayClient, record: Bool = false, outputDirectory: URL? = nil) {
        self.client = client
        self.record = record
        self.outputDirectory = outputDirectory
    }

    /// Runs every case through its deliveries in order, calling `onResult` as each row finishes.
    public func run(_ fixtures: [Fixture], onResult: @Sendable (FixtureResult) -> Void = { _ in }) async throws -> [FixtureResult] {
        let urls = Dictionary(try await client.functions().map { ($0.name, $0.url) }, uniquingKeysWith: { first, _ in first })
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("chunkrelay-fixtures-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        if let outputDirectory { try FileManager.default.createDirectory(at: outputDirectory, withIntermediateDirectories: true) }

        var results: [FixtureResult] = []
        for var fixture in fixtures {
            let functionURL = urls[fixture.function] ?? nil
            let deliveries = fixture.content.deliveries
                ?? (functionURL == nil || fixture.content.expect?.error != nil ? [.retrieve, .stream] : [.retrieve, .stream, .direct])
            for delivery in deliveries {
                let name = "\(fixture.function)-\(fixture.name)-\(delivery.rawValue)"
                let file = scratch.appendingPathComponent(name)
                let started = ContinuousClock.now
                let outcome = await produce(fixture, delivery, functionURL: functionURL, to: file)
                let duration = ContinuousClock.now - started
                var recorded = false
                var problems: [String]
                if let expect = fixture.content.expect {
                    problems = expect.mismatches(outcome, directory: fixture.file.deletingLastPathComponent())
                } else if record {
                    fixture.content.expect = FixtureExpectation(recording: outcome)
                    do {
                        try fixture.save()
                        problems = []
                        recorded = true
                    } catch {
                        problems = ["could not record: \(error)"]
                    }
                } else {
                    problems = ["no expectations yet: run with --record to fill them in"]
                }
                let kept = keep(outcome, as: name)
                let result = FixtureResult(fixture: fixture, delivery: delivery, outcome: kept, problems: problems, recorded: recorded, duration: duration)
                onResult(result)
                results.append(result)
            }
        }
        return results
    }

    /// One delivery of one case; every error becomes a failure outcome, so one case cannot stop the run.
    private func produce(_ fixture: Fixture, _ delivery: FixtureDelivery, functionURL: String?, to file: URL) async -> FixtureOutcome {
        let chunks = ChunkCount()
        do {
            let image: RetrievedImage
            var reported: Int?
            switch delivery {
            case .retrieve:
                let created = try await client.createJob(CreateJobRequest(function: fixture.function, params: fixture.content.params, delivery: .retrieve))
                let status = try await client.waitUntilReady(created.id)
                guard let path = created.image ?? status.image, let sha256 = status.sha256 else {
                    return .failure(code: "no_image", message: "job \(created.id) became \(status.state.rawValue) without an image")
                }
                image = try await client.retrieve(imagePath: path, expectedSHA256: sha256, to: file, headers: fixture.content.faultHeaders(for: .retrieve))
                reported = status.chunks
            case .stream:
                let created = try await client.createJob(CreateJobRequest(function: fixture.function, params: fixture.content.params, delivery: .stream))
                image = try await client.streamImage(created.id, to: file, headers: fixture.content.faultHeaders(for: .stream), onEvent: chunks.observe)
                reported = chunks.value
            case .direct:
                guard let functionURL else {
                    return .failure(code: "no_function_url", message: "\(fixture.function) has no Function URL (a `url` in its function.json)")
                }
                image = try await client.generateDirect(
                    functionURL: functionURL, params: fixture.content.params, to: file, headers: fixture.content.faultHeaders(for: .direct), onEvent: chunks.observe)
                reported = chunks.value
            }
            return .image(.init(file: image.file, bytes: image.bytes, sha256: image.sha256, contentType: image.contentType, chunks: reported))
        } catch let error as RelayClientError {
            return .failure(code: error.code, message: error.message)
        } catch {
            return .failure(code: "client_error", message: "\(error)")
        }
    }

    /// Moves the image to `outputDirectory` under a readable name, when one is set.
    private func keep(_ outcome: FixtureOutcome, as name: String) -> FixtureOutcome {
        guard let outputDirectory, case .image(var image) = outcome else { return outcome }
        let ext = switch image.contentType {
        case "image/png": "png"
        case "image/jpeg": "jpg"
        case "image/webp": "webp"
        case "image/gif": "gif"
        default: "bin"
        }
        let destination = outputDirectory.appendingPathComponent("\(name).\(ext)")
        try? FileManager.default.removeItem(at: destination)
        guard (try? FileManager.default.moveItem(at: image.file, to: destination)) != nil else { return outcome }
        image.file = destination
        return .image(image)
    }
}

/// The chunk count a `done` event reports, read after the delivery returns.
private final class ChunkCount: Sendable {
    private let box = Mutex<Int?>(nil)

    var value: Int? { box.withLock { $0 } }

    @Sendable func observe(_ event: JobEvent) {
        if case .done(let done) = event { box.withLock { $0 = done.chunks } }
    }
}
