import ChunkRelayServer
import ArgumentParser
import Foundation
import RelayClient
import RelayProtocol
import Synchronization

/// `chunkrelay bench deliveries`: the three ways a client gets map-render's map (retrieve, stream,
/// direct from its Function URL), each end to end through `RelayClient` with the SHA-256 verified:
/// when the image's first bytes were there for the client (the first `chunk` event; for retrieve,
/// `ready`, when its download can start), and when the whole image was written.
struct DeliveryBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deliveries", abstract: "First byte and end to end for retrieve, stream and direct delivery of one map."
    )

    @Option(help: "Map width.") var width = 4096
    @Option(help: "Map height.") var height = 4096
    @Option(help: "Runs per delivery (medians are reported).") var runs = 5
    @Option(help: "Folder of functions.") var functions = "functions"

    enum Delivery: String, CaseIterable {
        case retrieve, stream, direct
    }

    func run() async throws {
        let params: [String: JSONValue] = ["width": .number(Double(width)), "height": .number(Double(height)), "seed": .number(1)]
        try await BenchServer.with(functions: functions, arguments: ["--max-concurrency", "1"]) { server in
            let client = RelayClient(baseURL: server.gatewayURL)
            guard let url = try await client.functions().first(where: { $0.name == "map-render" })?.url else {
                throw ExitMessage("map-render has no Function URL")
            }
            // A first map builds and warms the function; it is not counted.
            _ = try await Self.deliver(.retrieve, client: client, url: url, params: params)
            var rows: [(Delivery, [Double], [Double], Int64)] = []
            for delivery in Delivery.allCases {
                var first: [Double] = []
                var total: [Double] = []
                var bytes: Int64 = 0
                for run in 1...runs {
                    let measured = try await Self.deliver(delivery, client: client, url: url, params: params)
                    first.append(measured.first)
                    total.append(measured.total)
                    bytes = measured.bytes
                    print(String(format: "%@ run %d: first byte %.3f s, all %.3f s", delivery.rawValue, run, measured.first, measured.total))
                }
                rows.append((delivery, first, total, bytes))
            }
            print("\n| delivery | first bytes available s | end to end s | MB/s end to end |")
            print("|---|---|---|---|")
            for (delivery, first, total, bytes) in rows {
                let seconds = DataPathBench.median(total)
                print(String(format: "| %@ | %.3f | %.3f | %.1f |", delivery.rawValue, DataPathBench.median(first), seconds, Double(bytes) / 1e6 / seconds))
            }
        }
    }

    /// One map, written to a file and verified; the first byte is the first `chunk` event (stream,
    /// direct) or `ready` (retrieve, whose download starts then).
    static func deliver(_ delivery: Delivery, client: RelayClient, url: String, params: [String: JSONValue]) async throws -> (first: Double, total: Double, bytes: Int64) {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("bench-\(UUID().uuidString).png")
        defer { try? FileManager.default.removeItem(at: file) }
        let started = ContinuousClock.now
        let first = FirstByte()
        let onEvent: @Sendable (JobEvent) -> Void = { event in
            switch event {
            case .chunk, .ready: first.mark()
            default: break
            }
        }
        let image: RetrievedImage
        switch delivery {
        case .retrieve:
            image = try await client.generate(CreateJobRequest(function: "map-render", params: params, delivery: .retrieve), to: file, onEvent: onEvent)
        case .stream:
            image = try await client.generate(CreateJobRequest(function: "map-render", params: params, delivery: .stream), to: file, onEvent: onEvent)
        case .direct:
            image = try await client.generateDirect(functionURL: url, params: params, to: file, onEvent: onEvent)
        }
        let total = (ContinuousClock.now - started).inSeconds
        let firstByte = first.instant.map { ($0 - started).inSeconds } ?? total
        return (firstByte, total, image.bytes)
    }

    /// When the first `chunk` (or `ready`) event arrived; set once, from the event callback.
    final class FirstByte: Sendable {
        private let value = Mutex<ContinuousClock.Instant?>(nil)
        func mark() { value.withLock { $0 = $0 ?? .now } }
        var instant: ContinuousClock.Instant? { value.withLock { $0 } }
    }
}
