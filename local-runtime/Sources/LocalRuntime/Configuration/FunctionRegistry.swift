import Foundation

/// The functions found in a folder: every `<folder>/<name>/function.json`.
public struct FunctionRegistry: Sendable {
    /// Functions by name.
    public private(set) var functions: [String: FunctionConfiguration]

    /// Loads every `function.json` below `directory`; an invalid one is an error, not a silent skip.
    public init(directory: URL) throws {
        var functions: [String: FunctionConfiguration] = [:]
        let entries = (try? FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)) ?? []
        for folder in entries.sorted(by: { $0.path < $1.path }) {
            let file = folder.appendingPathComponent("function.json")
            guard FileManager.default.fileExists(atPath: file.path) else { continue }
            var configuration: FunctionConfiguration
            do {
                configuration = try JSONDecoder().decode(FunctionConfiguration.self, from: Data(contentsOf: file))
            } catch {
                throw RuntimeError(.invalidConfiguration, "\(file.path): \(error)")
            }
            if configuration.name.isEmpty { configuration.name = folder.lastPathComponent }
            configuration.directory = folder
            // A handler-style function needs no command: the shipped bootstrap runs its handler.
            if configuration.command == nil, configuration.swiftProduct == nil {
                configuration.command = HandlerRuntime.command(runtime: configuration.runtime, handler: configuration.handler, in: folder)
            }
            try configuration.validate()
            functions[configuration.name] = configuration
        }
        self.functions = functions
    }

    /// A registry of the given configurations (tests, embedding).
    public init(_ configurations: [FunctionConfiguration]) throws {
        var functions: [String: FunctionConfiguration] = [:]
        for configuration in configurations {
            try configuration.validate()
            functions[configuration.name] = configuration
        }
        self.functions = functions
    }

    /// This registry with `file`'s variables merged over each function's own `environment`; also returns
    /// the file's sections that name no function (SAM CLI ignores those; a typo should not pass unseen).
    public func merging(_ file: EnvironmentVariablesFile) -> (registry: FunctionRegistry, unknownSections: [String]) {
        var merged = self
        for (name, function) in functions {
            merged.functions[name]?.environment = function.environment.merging(file.variables(for: name)) { _, fromFile in fromFile }
        }
        return (merged, file.functions.keys.filter { functions[$0] == nil }.sorted())
    }

    /// The function called `name`.
    public func function(named name: String) -> FunctionConfiguration? {
        functions[name]
    }
}
