import Foundation

/// `serve --env-vars FILE`: environment variables in SAM CLI's format, merged over each function's
/// `function.json` `environment`.
///
/// ```json
/// {"Parameters": {"STAGE": "local"}, "map-render": {"TILE_SERVER": "http://127.0.0.1:9000"}}
/// ```
///
/// `Parameters` applies to every function; a function's own section wins over it. Values may be strings,
/// numbers or booleans (written as text, as CloudFormation does). Unlike SAM CLI, a variable need not be
/// declared in `function.json` first.
public struct EnvironmentVariablesFile: Sendable, Equatable {
    /// Variables for every function.
    public var parameters: [String: String]
    /// Variables per function name.
    public var functions: [String: [String: String]]

    /// The variables Lambda sets and refuses in a function's configuration.
    public static let reservedKeys: Set<String> = [
        "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV", "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "TZ",
    ]

    /// Reads and checks `url`; every problem names the file and, where it can, the line.
    public init(contentsOf url: URL) throws(RuntimeError) {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw RuntimeError(.invalidConfiguration, "\(url.path): cannot read the environment file: \(error.localizedDescription)")
        }
        try self.init(data: data, source: url.path)
    }

    /// Parses `data`; `source` names it in errors.
    public init(data: Data, source: String) throws(RuntimeError) {
        let text = String(decoding: data, as: UTF8.self)
        func failure(_ message: String, line: Int?) -> RuntimeError {
            RuntimeError(.invalidConfiguration, "\(source)\(line.map { ":\($0)" } ?? ""): \(message)")
        }
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: data)
        } catch {
            // Foundation says where the parser stopped only as a character offset in its debug text.
            let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? "\(error)"
            throw failure("not valid JSON (\(detail))", line: Self.offset(in: detail).map { Self.line(ofOffset: $0, in: text) })
        }
        guard let sections = root as? [String: Any] else {
            throw failure("the file must be a JSON object of sections (\"Parameters\" and function names)", line: 1)
        }
        var parameters: [String: String] = [:]
        var functions: [String: [String: String]] = [:]
        for (section, content) in sections {
            guard let variables = content as? [String: Any] else {
                throw failure("\"\(section)\" must be an object of variables", line: Self.line(ofKey: section, in: text))
            }
            var values: [String: String] = [:]
            for (key, value) in variables {
                guard let string = Self.text(of: value) else {
                    throw failure("\"\(section)\".\"\(key)\" must be a string, number or boolean", line: Self.line(ofKey: key, in: text))
                }
                if Self.reservedKeys.contains(key) {
                    throw failure(Self.reservedMessage([key]), line: Self.line(ofKey: key, in: text))
                }
                values[key] = string
            }
            if section == "Parameters" { parameters = values } else { functions[section] = values }
        }
        self.parameters = parameters
        self.functions = functions
    }

    /// The variables for `function`: `Parameters`, then its own section over them.
    public func variables(for function: String) -> [String: String] {
        parameters.merging(functions[function] ?? [:]) { _, own in own }
    }

    /// AWS's refusal of reserved keys in a function's environment.
    static func reservedMessage(_ keys: [String]) -> String {
        "Lambda was unable to configure your environment variables because the environment variables you have provided contains reserved keys that are currently not supported for modification. Reserved keys used in this request: \(keys.sorted().joined(separator: ", "))"
    }

    private static func text(of value: Any) -> String? {
        switch value {
        case let string as String: return string
        case let bool as Bool: return bool ? "true" : "false"
        case let number as NSNumber: return number.stringValue
        default: return nil
        }
    }

    /// The offset in Foundation's "… around character N." (or "… at character N").
    private static func offset(in detail: String) -> Int? {
        guard let range = detail.range(of: "character ") else { return nil }
        return Int(detail[range.upperBound...].prefix { $0.isNumber })
    }

    private static func line(ofOffset offset: Int, in text: String) -> Int {
        text.utf8.prefix(offset).reduce(1) { $1 == UInt8(ascii: "\n") ? $0 + 1 : $0 }
    }

    /// The line of the first `"key"` in the file: enough to point at a bad value.
    private static func line(ofKey key: String, in text: String) -> Int? {
        guard let range = text.range(of: "\"\(key)\"") else { return nil }
        return line(ofOffset: text.utf8.distance(from: text.utf8.startIndex, to: range.lowerBound), in: text)
    }
}
