import ArgumentParser
import ChunkRelayServer
import Foundation
import LocalRuntime

/// `--template` and `--parameter-overrides`, shared by `serve`, `invoke` and `test` as `sam local` shares them.
struct TemplateOptions: ParsableArguments {
    @Option(name: [.customShort("t"), .customLong("template")], help: "A SAM or CloudFormation template (YAML or JSON): its functions run beside those of --functions, named by logical id.")
    var template: String?
    @Option(
        name: .customLong("parameter-overrides"), parsing: .upToNextOption,
        help: "Values for the template's Parameters: Key=Value (or ParameterKey=Key,ParameterValue=Value), space-separated.")
    var parameterOverrides: [String] = []

    /// Puts the template and its overrides into `configuration`.
    func apply(to configuration: inout ServeConfiguration) throws {
        guard let template else {
            if !parameterOverrides.isEmpty { throw ValidationError("--parameter-overrides needs --template") }
            return
        }
        configuration.template = URL(fileURLWithPath: template)
        let words = parameterOverrides.flatMap { $0.split(whereSeparator: \.isWhitespace).map(String.init) }
        do {
            configuration.parameterOverrides = try LambdaTemplate.parseOverrides(words)
        } catch {
            throw ValidationError(error.message)
        }
    }
}
