import Crypto
import Foundation
import TestSupport
import Testing

@testable import ChunkRelayBench
@testable import chunkrelay

extension EndToEnd {
    /// `chunkrelay test` as a user runs it on their functions' fixtures: the real executable, an
    /// in-process server or `--server`, the table, the exit status and the JUnit file.
    @Suite(.timeLimit(.minutes(10))) struct FixtureCommandTests {
        static var chunkrelay: String { ServeProcess.binary.path }

        /// `functions/map-render` with its function.json and fixtures, copied under `root` (the executable
        /// is the one built beside chunkrelay, so nothing is built).
        static func copyOfMapRender(in root: URL) throws -> URL {
            let functions = root.appendingPathComponent("functions")
            let function = functions.appendingPathComponent("map-render")
            try FileManager.default.createDirectory(at: function, withIntermediateDirectories: true)
            let original = repositoryRoot.appendingPathComponent("functions/map-render")
            try FileManager.default.copyItem(at: original.appendingPathComponent("function.json"), to: function.appendingPathComponent("function.json"))
            try FileManager.default.copyItem(at: original.appendingPathComponent("fixtures"), to: function.appendingPathComponent("fixtures"))
            return functions
        }

        @Test func theShippedFixturesPassAndAreReportedAsJUnit() async throws {
            try await withScratchDirectory("fixtures-shipped") { root in
                let junit = root.appendingPathComponent("junit.xml")
                let run = try await run([Self.chunkrelay, "test", "--functions", repositoryRoot.appendingPathComponent("functions").path, "--junit", junit.path])
                #expect(run.status == 0, "\(run.output)")
                for name in ["defaults", "dropped-connections", "small-square", "wide-seed-42", "zero-width"] {
                    #expect(run.output.contains("map-render  \(name)"), "the table has a row for \(name)")
                }
                #expect(run.output.contains("error function_error"), "the failing case shows its code")
                #expect(run.output.contains("5 cases, 13 runs: 13 passed, 0 failed"), "\(run.output)")
                let xml = try String(contentsOf: junit, encoding: .utf8)
                #expect(xml.contains(#"<testsuites name="chunkrelay test" tests="13" failures="0""#), "\(xml)")
                #expect(xml.contains(#"<testcase classname="map-render" name="small-square (direct)""#))
                #expect(!xml.contains("<failure"))
            }
        }

        @Test func aChangedDigestFailsNamingTheCase() async throws {
            try await withScratchDirectory("fixtures-changed") { root in
                let functions = try Self.copyOfMapRender(in: root)
                let file = functions.appendingPathComponent("map-render/fixtures/small-square.json")
                let wrong = String(repeating: "0", count: 64)
                let text = try String(contentsOf: file, encoding: .utf8)
                try text.replacingOccurrences(of: "3d3e833f7624919893ad45d2875c28291efb7dd6d1cd9377ef98d296bfb23002", with: wrong)
                    .write(to: file, atomically: true, encoding: .utf8)
                // Against a running server this time.
                let serve = try await ServeProcess.start(stateDirectory: root.appendingPathComponent("state"))
                defer { serve.child.signal(SIGKILL) }
                let junit = root.appendingPathComponent("junit.xml")
                let run = try await run([Self.chunkrelay, "test", "--functions", functions.path, "--server", serve.gateway, "--junit", junit.path, "map-render/small-square", "map-render/wide-seed-42"])
                #expect(run.status == 1, "\(run.output)")
                for delivery in ["retrieve", "stream", "direct"] {
                    #expect(run.output.contains("FAILED map-render/small-square (\(delivery)): sha256 is 3d3e833f7624919893ad45d2875c28291efb7dd6d1cd9377ef98d296bfb23002, expected \(wrong)"), "\(run.output)")
                }
                #expect(!run.output.contains("FAILED map-render/wide-seed-42"), "only the changed case fails")
                #expect(run.output.contains("2 cases, 6 runs: 3 passed, 3 failed"), "\(run.output)")
                let xml = try String(contentsOf: junit, encoding: .utf8)
                #expect(xml.contains(#"failures="3""#))
                #expect(xml.contains(#"<failure message="sha256 is 3d3e833f"#), "\(xml)")
            }
        }

        @Test func recordFillsInANewCaseAndTheNextRunChecksIt() async throws {
            try await withScratchDirectory("fixtures-record") { root in
                let functions = try Self.copyOfMapRender(in: root)
                let file = functions.appendingPathComponent("map-render/fixtures/tiny.json")
                try #"{"description": "new", "params": {"width": 64, "height": 32, "seed": 9}, "deliveries": ["retrieve", "stream"]}"#
                    .write(to: file, atomically: true, encoding: .utf8)

                let unrecorded = try await run([Self.chunkrelay, "test", "--functions", functions.path, "map-render/tiny"])
                #expect(unrecorded.status == 1)
                #expect(unrecorded.output.contains("FAILED map-render/tiny (retrieve): no expectations yet: run with --record"), "\(unrecorded.output)")

                let images = root.appendingPathComponent("images")
                let recording = try await run([Self.chunkrelay, "test", "--functions", functions.path, "--record", "--output", images.path, "map-render/tiny"])
                #expect(recording.status == 0, "\(recording.output)")
                #expect(recording.output.contains("recorded"), "\(recording.output)")
                let recorded = try JSONDecoder().decode(Recorded.self, from: Data(contentsOf: file))
                let image = try Data(contentsOf: images.appendingPathComponent("map-render-tiny-retrieve.png"))
                #expect(recorded.expect.sha256 == SHA256.hash(data: image).map { String(format: "%02x", $0) }.joined())
                #expect(recorded.expect.bytes == image.count)
                #expect(recorded.expect.contentType == "image/png")
                #expect(recorded.expect.chunks == 1)
                #expect(recorded.description == "new", "the rest of the file is kept")

                let checked = try await run([Self.chunkrelay, "test", "--functions", functions.path, "map-render/tiny"])
                #expect(checked.status == 0, "\(checked.output)")
                #expect(checked.output.contains("1 case, 2 runs: 2 passed, 0 failed"), "\(checked.output)")

                let typo = try await run([Self.chunkrelay, "test", "--functions", functions.path, "map-render/tinny"])
                #expect(typo.status != 0)
                #expect(typo.output.contains("no fixture matches 'map-render/tinny'"), "\(typo.output)")
            }
        }

        struct Recorded: Decodable {
            struct Expect: Decodable {
                var sha256: String?
                var bytes: Int?
                var contentType: String?
                var chunks: Int?
            }
            var description: String?
            var expect: Expect
        }
    }
}
