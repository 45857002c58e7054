import Foundation
import RelayProtocol

/// A function's `function.json`: how to start it and the platform limits it runs under.
///
/// ```json
/// {"swiftProduct": "map-render", "timeout": 120, "memorySize": 2048, "reservedConcurrency": 4}
/// ```
public struct FunctionConfiguration: Codable, Sendable, Hashable {
    /// The function's name; the folder name when absent.
    public var name: String
    /// Free text.
    public var description: String?
    /// Lambda's runtime identifier, reported in the environment (`AWS_EXECUTION_ENV`).
    public var runtime: String
    /// `_HANDLER`.
    public var handler: String
    /// A SwiftPM executable product of this package that is the function (built on demand).
    public var swiftProduct: String?
    /// Or a command line to start it, run in the function's folder (`LAMBDA_TASK_ROOT`); a relative
    /// executable path is relative to that folder.
    public var command: [String]?
    /// Largest buffered request or response payload (AWS: 6 MiB + 100 bytes).
    public var maximumPayloadBytes: Int
    /// Largest streamed response (`Lambda-Runtime-Function-Response-Mode: streaming`; AWS: 200 MiB).
    public var maximumStreamingPayloadBytes: Int
    /// Largest asynchronous (`Event`) payload (AWS: 1 MiB; set 262144 to match an older account limit).
    public var maximumEventBytes: Int
    /// Commands that build the function (run in its folder) when `buildCreates` does not exist yet.
    public var build: [[String]]?
    /// A path, relative to the function's folder, that exists once the function is built.
    public var buildCreates: String?
    /// Seconds an invocation may run (AWS default 3, maximum 900).
    public var timeout: Double
    /// MB of memory (AWS default 128, 128...10240).
    public var memorySize: Int
    /// Concurrent execution environments at most; the runtime's limit when absent.
    public var reservedConcurrency: Int?
    /// Retries of a failed asynchronous invocation (AWS default 2, 0...2).
    public var maximumRetryAttempts: Int
    /// Extra environment variables (never one of `EnvironmentVariablesFile.reservedKeys`).
    public var environment: [String: String]
    /// The log format and levels; Lambda's plain text when absent.
    public var loggingConfig: FunctionLoggingConfig?
    /// A Function URL, when the function has one.
    public var url: FunctionURLConfig?
    /// Streamed responses (Function URL, `InvokeWithResponseStream`) at Lambda's bandwidth: the first
    /// 6 MB at full speed, then 2 MB a second (`"awsStreamingBandwidth": true`; off by default).
    public var awsStreamingBandwidth = false
    /// The function's folder; set by the registry.
    public var directory: URL?
    /// The Swift package `swiftProduct` is built in; the runtime's own package when nil (a template's
    /// `CodeUri` inside another package's `AWSLambdaPackager` output sets it).
    public var swiftPackage: URL?
    /// A `.zip` of the function's code, unpacked into `directory` before its first start.
    public var archive: URL?
    /// A template's `Architectures`: reported, not emulated (functions run on this machine's).
    public var architectures: [String]?

    /// Makes a configuration with AWS's defaults.
    public init(
        name: String, runtime: String = "provided.al2023", handler: String? = nil, swiftProduct: String? = nil,
        command: [String]? = nil, timeout: Double = 3, memorySize: Int = 128, reservedConcurrency: Int? = nil,
        maximumRetryAttempts: Int = 2, environment: [String: String] = [:], directory: URL? = nil,
        maximumPayloadBytes: Int = RelayLimits.lambdaBufferedPayload, maximumEventBytes: Int = RelayLimits.lambdaAsyncEventPayload,
        maximumStreamingPayloadBytes: Int = RelayLimits.lambdaStreamingPayload
    ) {
        self.maximumStreamingPayloadBytes = maximumStreamingPayloadBytes
        self.maximumPayloadBytes = maximumPayloadBytes
        self.maximumEventBytes = maximumEventBytes
        self.name = name
        self.runtime = runtime
        self.handler = handler ?? swiftProduct ?? name
        self.swiftProduct = swiftProduct
        self.command = command
        self.timeout = timeout
        self.memorySize = memorySize
        self.reservedConcurrency = reservedConcurrency
        self.maximumRetryAttempts = maximumRetryAttempts
        self.environment = environment
        self.directory = directory
    }

    private enum CodingKeys: String, CodingKey {
        case name, description, runtime, handler, swiftProduct, command, timeout, memorySize, reservedConcurrency
        case maximumRetryAttempts, environment, build, buildCreates, maximumPayloadBytes, maximumEventBytes
        case maximumStreamingPayloadBytes, loggingConfig, url, awsStreamingBandwidth
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let name = try c.decodeIfPresent(String.self, forKey: .name) ?? ""
        let swiftProduct = try c.decodeIfPresent(String.self, forKey: .swiftProduct)
        self.init(
            name: name,
            runtime: try c.decodeIfPresent(String.self, forKey: .runtime) ?? "provided.al2023",
            handler: try c.decodeIfPresent(String.self, forKey: .handler),
            swiftProduct: swiftProduct,
            command: try c.decodeIfPresent([String].self, forKey: .command),
            timeout: try c.decodeIfPresent(Double.self, forKey: .timeout) ?? 3,
            memorySize: try c.decodeIfPresent(Int.self, forKey: .memorySize) ?? 128,
            reservedConcurrency: try c.decodeIfPresent(Int.self, forKey: .reservedConcurrency),
            maximumRetryAttempts: try c.decodeIfPresent(Int.self, forKey: .maximumRetryAttempts) ?? 2,
            environment: try c.decodeIfPresent([String: String].self, forKey: .environment) ?? [:],
            maximumPayloadBytes: try c.decodeIfPresent(Int.self, forKey: .maximumPayloadBytes) ?? RelayLimits.lambdaBufferedPayload,
            maximumEventBytes: try c.decodeIfPresent(Int.self, forKey: .maximumEventBytes) ?? RelayLimits.lambdaAsyncEventPayload,
            maximumStreamingPayloadBytes: try c.decodeIfPresent(Int.self, forKey: .maximumStreamingPayloadBytes)
                ?? RelayLimits.lambdaStreamingPayload
        )
        self.description = try c.decodeIfPresent(String.self, forKey: .description)
        self.build = try c.decodeIfPresent([[String]].self, forKey: .build)
        self.buildCreates = try c.decodeIfPresent(String.self, forKey: .buildCreates)
        self.loggingConfig = try c.decodeIfPresent(FunctionLoggingConfig.self, forKey: .loggingConfig)
        self.url = try c.decodeIfPresent(FunctionURLConfig.self, forKey: .url)
        self.awsStreamingBandwidth = try c.decodeIfPresent(Bool.self, forKey: .awsStreamingBandwidth) ?? false
    }

    /// Checks the values against the platform's ranges.
    public func validate() throws(RuntimeError) {
        func invalid(_ message: String) -> RuntimeError { RuntimeError(.invalidConfiguration, "\(name): \(message)") }
        guard !name.isEmpty, name.utf8.count <= 64,
            name.utf8.allSatisfy({ $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) })
        else { throw invalid("a name is 1-64 letters, digits, hyphens or underscores") }
        guard (swiftProduct == nil) != (command == nil) else { throw invalid("set exactly one of swiftProduct and command") }
        if let command, command.isEmpty { throw invalid("command is empty") }
        guard timeout > 0, timeout <= 900 else { throw invalid("timeout must be in (0, 900] seconds") }
        guard (128...10240).contains(memorySize) else { throw invalid("memorySize must be 128...10240 MB") }
        if let reservedConcurrency, reservedConcurrency < 1 { throw invalid("reservedConcurrency must be at least 1") }
        guard (0...2).contains(maximumRetryAttempts) else { throw invalid("maximumRetryAttempts must be 0...2") }
        guard (1024...RelayLimits.lambdaBufferedPayload).contains(maximumPayloadBytes) else {
            throw invalid("maximumPayloadBytes must be 1024...\(RelayLimits.lambdaBufferedPayload)")
        }
        guard (1024...RelayLimits.lambdaAsyncEventPayload).contains(maximumEventBytes) else {
            throw invalid("maximumEventBytes must be 1024...\(RelayLimits.lambdaAsyncEventPayload)")
        }
        guard (1024...RelayLimits.lambdaStreamingPayload).contains(maximumStreamingPayloadBytes) else {
            throw invalid("maximumStreamingPayloadBytes must be 1024...\(RelayLimits.lambdaStreamingPayload)")
        }
        let reserved = environment.keys.filter(EnvironmentVariablesFile.reservedKeys.contains)
        if !reserved.isEmpty { throw invalid(EnvironmentVariablesFile.reservedMessage(reserved)) }
        if let problem = loggingConfig?.validate() { throw invalid(problem) }
        if let problem = url?.validate() { throw invalid(problem) }
    }

    /// The ARN the Runtime API reports as `Lambda-Runtime-Invoked-Function-Arn`.
    public func arn(region: String, account: String) -> String {
        "arn:aws:lambda:\(region):\(account):function:\(name)"
    }
}
