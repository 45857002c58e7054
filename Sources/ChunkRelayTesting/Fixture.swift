import FaultInjection
import Foundation
import NIOHTTP1
import RelayProtocol

/// One fixture case: a file `functions/<function>/fixtures/<name>.json` naming the params, the
/// deliveries to try and what each must produce.
///
/// ```json
/// {"description": "a small square", "params": {"width": 256, "height": 256, "seed": 7},
///  "deliveries": ["retrieve", "stream"],
///  "expect": {"sha256": "3d3e…", "bytes": 66606, "contentType": "image/png", "chunks": 1, "file": "small-square.png"}}
/// ```
///
/// `expect` may name a failure instead (`{"error": "function_error"}`), or be left out for
/// `chunkrelay test --record` to fill in. `faults` breaks deliveries on purpose, and the image must
/// still arrive: `{"retrieve": "reset-after=4MiB", "stream": "reset-after=3MiB"}` sends each as
/// `X-ChunkRelay-Fault` with that delivery's image or event requests (the gateway needs `--faults`).
public struct Fixture: Sendable, Hashable {
    /// The function it runs.
    public var function: String
    /// The case's name: its file name without `.json`.
    public var name: String
    /// Where it was read from (and `--record` writes to).
    public var file: URL
    /// What the file says.
    public var content: Content

    /// The JSON of a fixture file.
    public struct Content: Codable, Sendable, Hashable {
        /// What the case is about, for people.
        public var description: String?
        /// The job's params, passed to the function as they are.
        public var params: [String: JSONValue]
        /// The deliveries to run; absent means retrieve and stream, and direct when the function has a URL.
        public var deliveries: [FixtureDelivery]?
        /// What every delivery must produce; absent until recorded.
        public var expect: FixtureExpectation?
        /// A fault per delivery (`retrieve`, `stream`, `direct`), as `X-ChunkRelay-Fault` writes it.
        public var faults: [String: String]?

        /// Makes a fixture's content.
        public init(
            description: String? = nil, params: [String: JSONValue] = [:], deliveries: [FixtureDelivery]? = nil, expect: FixtureExpectation? = nil,
            faults: [String: String]? = nil
        ) {
            self.description = description
            self.params = params
            self.deliveries = deliveries
            self.expect = expect
            self.faults = faults
        }

        private enum CodingKeys: String, CodingKey { case description, params, deliveries, expect, faults }

        /// Reads a fixture; `params` may be left out.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            description = try container.decodeIfPresent(String.self, forKey: .description)
            params = try container.decodeIfPresent([String: JSONValue].self, forKey: .params) ?? [:]
            deliveries = try container.decodeIfPresent([FixtureDelivery].self, forKey: .deliveries)
            expect = try container.decodeIfPresent(FixtureExpectation.self, forKey: .expect)
            faults = try container.decodeIfPresent([String: String].self, forKey: .faults)
            for (delivery, fault) in faults ?? [:] {
                guard FixtureDelivery(rawValue: delivery) != nil else {
                    throw DecodingError.dataCorrupted(.init(codingPath: [CodingKeys.faults], debugDescription: "'\(delivery)' is not a delivery (retrieve, stream, direct)"))
                }
                do {
                    _ = try Fault(parsing: fault)
                } catch {
                    throw DecodingError.dataCorrupted(.init(codingPath: [CodingKeys.faults], debugDescription: "\(delivery): \(error.message)"))
                }
            }
        }

        /// The fault header for `delivery`'s requests, when the case declares one.
        public func faultHeaders(for delivery: FixtureDelivery) -> HTTPHeaders {
            guard let fault = faults?[delivery.rawValue] else { return [:] }
            return [FaultInjector.headerName: fault]
        }
    }

    /// `function/name`, as the table and failures name a case.
    public var id: String { "\(function)/\(name)" }

    /// Reads one fixture file; the function is `function`, or the folder above `fixtures/`
    /// (`functions/<function>/fixtures/<case>.json`).
    public init(contentsOf file: URL, function: String? = nil) throws {
        self.file = file
        self.function = function ?? file.deletingLastPathComponent().deletingLastPathComponent().lastPathComponent
        self.name = file.deletingPathExtension().lastPathComponent
        do {
            self.content = try JSONDecoder().decode(Content.self, from: Data(contentsOf: file))
        } catch let error as DecodingError {
            throw FixtureError("\(file.path): not a fixture: \(Self.describe(error))")
        } catch {
            throw FixtureError("\(file.path): \(error.localizedDescription)")
        }
    }

    /// Every fixture under `functions/*/fixtures/*.json`, sorted by function then name. With `only`, just
    /// the named functions (`map-render`) or cases (`map-render/small-square`); a name that matches
    /// nothing is an error, so a typo cannot pass for a green run.
    /// A template's functions' cases are `<template's folder>/fixtures/<LogicalId>/*.json`.
    public static func load(functions directory: URL, template: URL? = nil, only: [String] = []) throws -> [Fixture] {
        let manager = FileManager.default
        var fixtures: [Fixture] = []
        func cases(in folder: URL, function: String?) throws {
            let files = (try? manager.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)) ?? []
            for file in files.filter({ $0.pathExtension == "json" }).sorted(by: { $0.lastPathComponent < $1.lastPathComponent }) {
                fixtures.append(try Fixture(contentsOf: file, function: function))
            }
        }
        let folders = (try? manager.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)) ?? []
        for folder in folders.sorted(by: { $0.lastPathComponent < $1.lastPathComponent }) {
            try cases(in: folder.appendingPathComponent("fixtures"), function: nil)
        }
        if let template {
            let root = template.deletingLastPathComponent().appendingPathComponent("fixtures", isDirectory: true)
            let functions = (try? manager.contentsOfDirectory(at: root, includingPropertiesForKeys: nil)) ?? []
            for folder in functions.sorted(by: { $0.lastPathComponent < $1.lastPathComponent }) {
                try cases(in: folder, function: folder.lastPathComponent)
            }
        }
        guard !only.isEmpty else { return fixtures }
        for name in only where !fixtures.contains(where: { $0.function == name || $0.id == name }) {
            throw FixtureError("no fixture matches '\(name)' under \(directory.path)/*/fixtures")
        }
        return fixtures.filter { fixture in only.contains { $0 == fixture.function || $0 == fixture.id } }
    }

    /// Writes `content` back to `file`, keys sorted so that a recorded case diffs cleanly.
    public func save() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var data = try encoder.encode(content)
        data.append(UInt8(ascii: "\n"))
        try data.write(to: file, options: .atomic)
    }

    private static func describe(_ error: DecodingError) -> String {
        switch error {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .keyNotFound(_, let context), .dataCorrupted(let context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return path.isEmpty ? context.debugDescription : "\(path): \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }
}
