import ArgumentParser
import ChunkRelayServer
import Foundation
import LocalRuntime

/// `--template` and `--parameter-overrides`, shared by `serve`, `invoke` and `test` as `sam local` shares them.
struct TemplateOptions: ParsableArguments {
    /// The template and its overrides, checked: what goes into a `ServeConfiguration`.
    struct Checked: Sendable {
        var template: URL?
        var parameterOverrides: [String: String]

        /// Puts them into `configuration`.
        func apply(to configuration: inout ServeConfiguration) {
            configuration.template = template
            configuration.parameterOverrides = parameterOverrides
        }
    }

    @Option(name: [.customShort("t"), .customLong("template")], help: "A SAM or CloudFormation template (YAML or JSON): its functions run beside those of --functions, named by logical id.")
    var template: String?
    @Option(
        name: .customLong("parameter-overrides"), parsing: .upToNextOption,
        help: "Values for the template's Parameters: Key=Value (or ParameterKey=Key,ParameterValue=Value), space-separated.")
    var parameterOverrides: [String] = []

    /// The options checked: overrides need a template, and each must read as SAM reads it.
    func checked() throws -> Checked {
        guard let template else {
            if !parameterOverrides.isEmpty { throw ValidationError("--parameter-overrides needs --template") }
            return Checked(template: nil, parameterOverrides: [:])
        }
        let words = parameterOverrides.flatMap { $0.split(whereSeparator: \.isWhitespace).map(String.init) }
        do {
            return Checked(template: URL(fileURLWithPath: template), parameterOverrides: try LambdaTemplate.parseOverrides(words))
        } catch {
            throw ValidationError(error.message)
        }
    }
}
