import Foundation
import TestSupport
import Testing

extension EndToEnd {
    /// README's "Add your own function", followed to the letter by `.ci/add-your-own-function.py`: the
    /// files README shows, written where it says, and its commands, which must print what it says.
    /// The Python and Node.js recipes run here; the Swift one adds a target to Package.swift and builds it, which
    /// a nested `swift build` cannot do under `swift test`, so `.ci/run` runs it after the tests.
    @Suite(.timeLimit(.minutes(5))) struct AddYourOwnFunctionTests {
        /// Runs the script for `language` in a scratch folder, which `body` sees before it is removed.
        static func follow(_ language: String, _ body: (_ root: URL, _ result: (status: Int32, output: String)) throws -> Void) async throws {
            try await withScratchDirectory("add-function") { root in
                let result = try await run([
                    "python3", repositoryRoot.appendingPathComponent(".ci/add-your-own-function.py").path,
                    "--language", language, "--root", root.path, "--chunkrelay", ServeProcess.binary.path, "--keep",
                ])
                #expect(result.status == 0, "\(result.output)")
                try body(root, result)
            }
        }

        @Test func thePythonRecipeWorksAsWritten() async throws {
            try await Self.follow("python") { root, result in
                #expect(result.output.contains("README's python recipe: 2 commands and 2 fixture files, all as README says"), "\(result.output)")
                // What README's recipe wrote is a working function: its recorded fixture names a real image.
                let fixture = root.appendingPathComponent("functions/hello-py/fixtures/red-square.json")
                let recorded = try JSONDecoder().decode(FixtureCommandTests.Recorded.self, from: Data(contentsOf: fixture))
                #expect(recorded.expect.contentType == "image/png")
                #expect(recorded.expect.bytes ?? 0 > 64 * 64 * 3, "a 64×64 RGB PNG stored uncompressed")
            }
        }

        @Test func theNodeRecipeWorksAsWritten() async throws {
            try await Self.follow("node") { _, result in
                // The script also checks the recorded digest is the PPM README describes (the Swift recipe's bytes).
                #expect(result.output.contains("README's node recipe: 2 commands and 1 fixture files, all as README says"), "\(result.output)")
            }
        }
    }
}
