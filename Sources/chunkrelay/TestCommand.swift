import ChunkRelayServer
import ArgumentParser
import ChunkRelayTesting
import FaultInjection
import Foundation
import Logging
import RelayClient

/// `chunkrelay test`: runs the fixtures beside each function through the real flow and reports.
struct TestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test",
        abstract: "Run the fixtures in functions/<name>/fixtures/*.json (and a template's fixtures/<LogicalId>/*.json) through a gateway and check what each produces.",
        discussion: """
            Each fixture is one case: params, the deliveries to try (retrieve, stream, direct), and what every \
            delivery must produce (sha256, bytes, contentType, chunks, file) or the error code it must fail with. \
            Without --server, a gateway and runtime run in this process on free ports for the length of the run \
            (with faults on demand when a case declares `faults`; a --server must run with --faults for them). \
            Exits 1 naming each failing case.
            """
    )

    @Argument(help: "Only these functions (map-render) or cases (map-render/small-square).") var only: [String] = []
    @Option(name: .customLong("functions"), help: "Folder of functions, one subfolder with a function.json (and fixtures/) each (default: functions, or none with --template).")
    var functionsDirectory: String?
    @OptionGroup var templateOptions: TemplateOptions
    @Option(help: "A running gateway's URL; without it, one is started in-process for the run.") var server: String?
    @Option(help: "Also write the results as JUnit XML to this file.") var junit: String?
    @Flag(help: "Fill in the expectations of cases that have none from what they produced.") var record = false
    @Option(help: "Keep each image here as <function>-<case>-<delivery>.<ext>.") var output: String?
    @Option(name: .customLong("log-level"), help: "Log level of the in-process server (its warnings about the failures a case expects are noise).") var logLevel = "error"

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .error
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        // With a template, its functions are the project's (as in a SAM project), unless --functions adds a folder.
        let folder = functionsDirectory ?? (templateOptions.template == nil ? "functions" : FileManager.default.temporaryDirectory
            .appendingPathComponent("chunkrelay-no-functions-\(UUID().uuidString)").path)
        let functions = URL(fileURLWithPath: folder, isDirectory: true)
        let fixtures: [Fixture]
        do {
            fixtures = try Fixture.load(functions: functions, template: templateOptions.template.map { URL(fileURLWithPath: $0) }, only: only)
        } catch {
            throw ExitMessage("error: \(error)")
        }
        guard !fixtures.isEmpty else {
            throw ExitMessage("error: no fixtures under \(templateOptions.template.map { "\($0)'s fixtures/<LogicalId>/*.json" } ?? "\(functions.path)/*/fixtures/*.json")")
        }
        // Rows are printed as they finish (a large case takes seconds), aligned from the fixtures' names.
        let widths = FixtureReport.widths(for: fixtures)
        let runner = { @Sendable (client: RelayClient) async throws -> [FixtureResult] in
            print(FixtureReport.line(FixtureReport.header, widths: widths))
            return try await FixtureRunner(client: client, record: record, outputDirectory: output.map { URL(fileURLWithPath: $0, isDirectory: true) })
                .run(fixtures) { result in print(FixtureReport.line(FixtureReport.cells(result), widths: widths)) }
        }
        let results: [FixtureResult]
        if let server {
            results = try await runner(RelayClient(baseURL: server))
        } else {
            // Cases that break their deliveries on purpose need a gateway that honours their fault headers.
            let faulty = fixtures.contains { !($0.content.faults ?? [:]).isEmpty }
            var faultLogger = Logger(label: "chunkrelay-faults")
            faultLogger.logLevel = level
            let injector = faulty ? FaultInjector(logger: faultLogger) : nil
            let template = try templateOptions.checked()
            results = try await withChunkRelay(
                functions: functions,
                configure: { configuration in
                    configuration.gateway.faults = injector
                    template.apply(to: &configuration)
                },
                logLevel: level
            ) { relay in
                try await runner(relay.client)
            }
        }
        let report = FixtureReport(results: results)
        print("")
        print(report.summary)
        if let junit {
            try Data(report.junitXML.utf8).write(to: URL(fileURLWithPath: junit))
            print("wrote \(junit)")
        }
        if !report.failures.isEmpty { throw ExitCode(1) }
    }
}
