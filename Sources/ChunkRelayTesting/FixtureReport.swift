import Foundation
import RelayProtocol

/// A fixture run written for people (a table and the failures, each naming its case) and for CI
/// systems (JUnit XML: one suite per function, one test case per case and delivery).
public struct FixtureReport: Sendable {
    /// The rows, in the order they ran.
    public var results: [FixtureResult]

    /// Makes a report.
    public init(results: [FixtureResult]) {
        self.results = results
    }

    /// The rows that did not pass.
    public var failures: [FixtureResult] { results.filter { !$0.passed } }

    /// The column headings; the last column (bytes, or the error code) has no fixed width.
    public static let header = ["FUNCTION", "CASE", "DELIVERY", "RESULT", "TIME", "CHUNKS", "BYTES"]

    /// Column widths that fit every row of these fixtures, known before any runs, so rows can be
    /// printed aligned as they finish.
    public static func widths(for fixtures: [Fixture]) -> [Int] {
        [
            max(header[0].count, fixtures.map(\.function.count).max() ?? 0),
            max(header[1].count, fixtures.map(\.name.count).max() ?? 0),
            FixtureDelivery.allCases.map(\.rawValue.count).max() ?? 8,
            "recorded".count, "9999.99 s".count, header[5].count,
        ]
    }

    /// One table line: each cell padded to its width, the last one as it is.
    public static func line(_ cells: [String], widths: [Int]) -> String {
        zip(cells, widths).map { $0.padding(toLength: max($1, $0.count), withPad: " ", startingAt: 0) }.joined(separator: "  ")
            + "  " + (cells.last ?? "")
    }

    /// One row's cells.
    public static func cells(_ result: FixtureResult) -> [String] {
        let verdict = !result.passed ? "FAIL" : result.recorded ? "recorded" : "pass"
        switch result.outcome {
        case .image(let image):
            return [result.fixture.function, result.fixture.name, result.delivery.rawValue, verdict, Self.time(result.duration),
                    image.chunks.map(String.init) ?? "-", String(image.bytes)]
        case .failure(let code, _):
            return [result.fixture.function, result.fixture.name, result.delivery.rawValue, verdict, Self.time(result.duration), "-", "error \(code)"]
        }
    }

    private static func time(_ duration: Duration) -> String { String(format: "%.2f s", duration.inSeconds) }

    /// One line per failure, `FAILED function/case (delivery): why`, then a count.
    public var summary: String {
        var lines = failures.map { "FAILED \($0.fixture.id) (\($0.delivery.rawValue)): \($0.problems.joined(separator: "; "))" }
        let recorded = results.filter(\.recorded).count
        var counts = ["\(results.count - failures.count) passed", "\(failures.count) failed"]
        if recorded > 0 { counts.append("\(recorded) recorded") }
        let cases = Set(results.map(\.fixture.id)).count
        lines.append("\(cases) case\(cases == 1 ? "" : "s"), \(results.count) run\(results.count == 1 ? "" : "s"): " + counts.joined(separator: ", "))
        return lines.joined(separator: "\n")
    }

    /// The run as JUnit XML, as Jenkins, GitLab and GitHub's test reporters read it.
    public var junitXML: String {
        let total = results.reduce(0.0) { $0 + $1.duration.inSeconds }
        var xml = #"<?xml version="1.0" encoding="UTF-8"?>"# + "\n"
        xml += #"<testsuites name="chunkrelay test" tests="\#(results.count)" failures="\#(failures.count)" time="\#(Self.seconds(total))">"# + "\n"
        var functions: [String] = []
        for result in results where !functions.contains(result.fixture.function) { functions.append(result.fixture.function) }
        for function in functions {
            let rows = results.filter { $0.fixture.function == function }
            let time = rows.reduce(0.0) { $0 + $1.duration.inSeconds }
            xml += #"  <testsuite name="\#(Self.escape(function))" tests="\#(rows.count)" failures="\#(rows.filter { !$0.passed }.count)" time="\#(Self.seconds(time))">"# + "\n"
            for row in rows {
                let name = Self.escape("\(row.fixture.name) (\(row.delivery.rawValue))")
                let open = #"    <testcase classname="\#(Self.escape(function))" name="\#(name)" time="\#(Self.seconds(row.duration.inSeconds))""#
                if row.passed {
                    xml += open + "/>\n"
                } else {
                    let message = Self.escape(row.problems.joined(separator: "; "))
                    xml += open + ">\n"
                    xml += #"      <failure message="\#(message)">\#(Self.escape(row.fixture.file.path)): \#(message)</failure>"# + "\n"
                    xml += "    </testcase>\n"
                }
            }
            xml += "  </testsuite>\n"
        }
        xml += "</testsuites>\n"
        return xml
    }

    private static func seconds(_ value: Double) -> String { String(format: "%.3f", value) }

    private static func escape(_ text: String) -> String {
        var escaped = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&apos;"
            case "\n", "\t": escaped += "&#\(scalar.value);"
            // XML 1.0 has no way to write other control characters; a message quoting one keeps a mark.
            case _ where scalar.value < 0x20: escaped += "?"
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }
}
