// A Swift client of ChunkRelay: renders a 3×3 grid of map tiles at once with RelayClient, half of
// them in stream mode and half in retrieve mode, and saves each verified tile as a PNG.
//
//     swift run map-tiles http://127.0.0.1:8080 tiles/ [size]
import Foundation
import RelayClient
import RelayProtocol

let arguments = CommandLine.arguments
guard arguments.count >= 3 else {
    FileHandle.standardError.write(Data("usage: map-tiles SERVER OUTDIR [SIZE]\n".utf8))
    exit(2)
}
let relay = RelayClient(baseURL: arguments[1])
let directory = URL(fileURLWithPath: arguments[2], isDirectory: true)
let size = arguments.count > 3 ? Int(arguments[3]) ?? 512 : 512
try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)

/// One tile of the grid: its place, the map's seed, and how it is delivered.
struct Tile: Sendable {
    var row: Int
    var column: Int
    var seed: Int { 100 + row * 3 + column }
    var delivery: DeliveryMode { (row + column).isMultiple(of: 2) ? .stream : .retrieve }
    var file: String { "tile-\(row)-\(column).png" }
}

let tiles = (0..<3).flatMap { row in (0..<3).map { Tile(row: row, column: $0) } }
let started = ContinuousClock.now
do {
    // All nine at once: the gateway queues what its concurrency limit does not run yet.
    let images = try await withThrowingTaskGroup(of: (Tile, RetrievedImage).self) { group in
        for tile in tiles {
            group.addTask {
                let image = try await relay.generate(
                    "map-render", params: ["width": .number(Double(size)), "height": .number(Double(size)), "seed": .number(Double(tile.seed))],
                    delivery: tile.delivery, to: directory.appendingPathComponent(tile.file)
                )
                return (tile, image)
            }
        }
        var images: [(Tile, RetrievedImage)] = []
        for try await image in group { images.append(image) }
        return images.sorted { ($0.0.row, $0.0.column) < ($1.0.row, $1.0.column) }
    }
    for (tile, image) in images {
        print("\(tile.file)  \(tile.delivery.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0))  seed \(tile.seed)  \(image.bytes) bytes  sha256 \(image.sha256)")
    }
    print("9 tiles verified in \((ContinuousClock.now - started).formatted(.units(allowed: [.seconds, .milliseconds], width: .narrow)))")
} catch let error as RelayClientError {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit(1)
}
