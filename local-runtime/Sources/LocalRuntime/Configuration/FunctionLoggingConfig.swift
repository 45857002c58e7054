/// A function's `loggingConfig`, as Lambda's `LoggingConfig`: the format of its logs and, for JSON,
/// the levels its application and the platform log at.
///
/// ```json
/// "loggingConfig": {"logFormat": "JSON", "applicationLogLevel": "DEBUG", "systemLogLevel": "INFO"}
/// ```
public struct FunctionLoggingConfig: Codable, Sendable, Hashable {
    /// `Text` (Lambda's `START`/`END`/`REPORT` lines) or `JSON` (platform records).
    public enum LogFormat: String, Codable, Sendable {
        case text = "Text"
        case json = "JSON"
    }

    /// Levels Lambda accepts for application logs (`systemLogLevel` takes DEBUG, INFO and WARN only).
    public enum Level: String, Codable, Sendable, Comparable {
        case trace = "TRACE", debug = "DEBUG", info = "INFO", warn = "WARN", error = "ERROR", fatal = "FATAL"

        private var rank: Int { [.trace, .debug, .info, .warn, .error, .fatal].firstIndex(of: self) ?? 0 }
        /// Lower levels are more verbose.
        public static func < (a: Level, b: Level) -> Bool { a.rank < b.rank }
    }

    /// The format; Lambda's default is `Text`.
    public var logFormat: LogFormat
    /// Handed to the function as `AWS_LAMBDA_LOG_LEVEL` (JSON only).
    public var applicationLogLevel: Level?
    /// Which platform records are written (JSON only); Lambda's default is INFO.
    public var systemLogLevel: Level?

    /// Makes a configuration.
    public init(logFormat: LogFormat = .text, applicationLogLevel: Level? = nil, systemLogLevel: Level? = nil) {
        self.logFormat = logFormat
        self.applicationLogLevel = applicationLogLevel
        self.systemLogLevel = systemLogLevel
    }

    private enum CodingKeys: String, CodingKey { case logFormat, applicationLogLevel, systemLogLevel }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            logFormat: try c.decodeIfPresent(LogFormat.self, forKey: .logFormat) ?? .text,
            applicationLogLevel: try c.decodeIfPresent(Level.self, forKey: .applicationLogLevel),
            systemLogLevel: try c.decodeIfPresent(Level.self, forKey: .systemLogLevel)
        )
    }

    /// Lambda refuses levels with the text format and a system level outside DEBUG, INFO and WARN.
    func validate() -> String? {
        if logFormat == .text, applicationLogLevel != nil || systemLogLevel != nil {
            return "loggingConfig: log levels can only be set with the JSON log format"
        }
        if let systemLogLevel, ![.debug, .info, .warn].contains(systemLogLevel) {
            return "loggingConfig: systemLogLevel must be DEBUG, INFO or WARN"
        }
        return nil
    }

    /// Whether a platform record of `level` is written under this configuration.
    func writesPlatformRecord(at level: Level) -> Bool {
        level >= (systemLogLevel ?? .info)
    }
}
