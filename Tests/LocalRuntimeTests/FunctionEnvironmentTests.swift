import Foundation
import NIOCore
import Testing

@testable import LocalRuntime

/// What a function finds in its environment (`--env-vars`, reserved variables, the log format) and
/// the platform records written around its invocations in the JSON log format.
@Suite(.serialized, .timeLimit(.minutes(5))) struct FunctionEnvironmentTests {
    static func file(_ text: String) throws(RuntimeError) -> EnvironmentVariablesFile {
        try EnvironmentVariablesFile(data: Data(text.utf8), source: "env.json")
    }

    @Test func theFileMergesOverFunctionJSONWithTheFunctionsSectionWinning() async throws {
        let file = try Self.file(
            """
            {"Parameters": {"STAGE": "local", "SHARED": "parameters", "OWN": "parameters"},
             "chaos": {"SHARED": "chaos", "PORT": 8080, "RATIO": 1.5, "DEBUG": true},
             "no-such-function": {"X": "1"}}
            """
        )
        let registry = try FunctionRegistry([RuntimeHarness.chaos(environment: ["OWN": "function.json", "KEPT": "function.json"])])
        let merged = registry.merging(file)
        #expect(merged.unknownSections == ["no-such-function"])
        try await RuntimeHarness.run(Array(merged.registry.functions.values)) { runtime, _ in
            let result = try await runtime.invoke("chaos", payload: ByteBuffer(string: #"{"mode":"env"}"#))
            let environment = result.json
            #expect(environment["STAGE"] == "local")
            #expect(environment["SHARED"] == "chaos", "a function's own section wins over Parameters")
            #expect(environment["OWN"] == "parameters", "the file wins over function.json")
            #expect(environment["KEPT"] == "function.json")
            #expect(environment["PORT"] == "8080" && environment["RATIO"] == "1.5" && environment["DEBUG"] == "true")
            #expect(environment["X"] == nil)
            #expect(environment["AWS_LAMBDA_FUNCTION_NAME"] == "chaos")
            #expect(environment["AWS_LAMBDA_LOG_FORMAT"] == "Text")
            #expect(environment["AWS_LAMBDA_LOG_LEVEL"] == nil, "set only with the JSON format")
        }
    }

    /// Each problem names the file, the line where it can, and what is wrong.
    @Test(arguments: [
        ("{\n  \"chaos\": {\n    \"A\": \"1\",\n    \"B\": oops\n  }\n}\n", "env.json:4: not valid JSON"),
        ("{\n  \"Parameters\": {\n    \"AWS_REGION\": \"eu-west-1\"\n  }\n}", "env.json:3: Lambda was unable to configure your environment variables because the environment variables you have provided contains reserved keys that are currently not supported for modification. Reserved keys used in this request: AWS_REGION"),
        ("{\n  \"chaos\": [\"A\"]\n}", "env.json:2: \"chaos\" must be an object of variables"),
        ("{\n  \"chaos\": {\n    \"A\": {\"nested\": 1}\n  }\n}", "env.json:3: \"chaos\".\"A\" must be a string, number or boolean"),
        ("[1, 2]", "env.json:1: the file must be a JSON object"),
    ])
    func aBadFileIsRefusedNamingTheLine(text: String, message: String) {
        let error = #expect(throws: RuntimeError.self) { try Self.file(text) }
        #expect(error?.message.hasPrefix(message) == true, "\(error?.message ?? "")")
    }

    @Test func functionJSONCannotSetAReservedVariableEither() {
        let error = #expect(throws: RuntimeError.self) {
            try FunctionRegistry([RuntimeHarness.chaos(environment: ["LAMBDA_TASK_ROOT": "/elsewhere", "FINE": "1"])])
        }
        #expect(error?.message.hasSuffix("Reserved keys used in this request: LAMBDA_TASK_ROOT") == true, "\(error?.message ?? "")")
    }

    static func chaos(logging: FunctionLoggingConfig) -> FunctionConfiguration {
        var function = RuntimeHarness.chaos()
        function.loggingConfig = logging
        return function
    }

    /// The JSON log format: the function is told (`AWS_LAMBDA_LOG_FORMAT`, `AWS_LAMBDA_LOG_LEVEL`) and the
    /// platform writes `platform.start`, `platform.runtimeDone` and `platform.report` records.
    @Test func theJSONLogFormatWritesPlatformRecords() async throws {
        let function = Self.chaos(logging: FunctionLoggingConfig(logFormat: .json, applicationLogLevel: .debug, systemLogLevel: .debug))
        try await RuntimeHarness.run([function]) { runtime, _ in
            let result = try await runtime.invoke("chaos", payload: ByteBuffer(string: #"{"mode":"env"}"#))
            #expect(result.json["AWS_LAMBDA_LOG_FORMAT"] == "JSON")
            #expect(result.json["AWS_LAMBDA_LOG_LEVEL"] == "DEBUG")
            let records = Self.records(in: result.log)
            #expect(records.map { $0["type"] as? String } == ["platform.start", "platform.runtimeDone", "platform.report"], "\(result.log)")
            for record in records {
                #expect((record["record"] as? [String: Any])?["requestId"] as? String == result.requestID)
                #expect((record["time"] as? String).flatMap { try? Date($0, strategy: .iso8601) } != nil, "\(record)")
            }
            #expect((records.first?["record"] as? [String: Any])?["version"] as? String == "$LATEST")
            let report = try #require(records.last?["record"] as? [String: Any])
            let metrics = try #require(report["metrics"] as? [String: Any])
            #expect(report["status"] as? String == "success")
            #expect(metrics["memorySizeMB"] as? Int == 256)
            #expect((metrics["durationMs"] as? Double ?? 0) > 0)
            #expect(metrics["billedDurationMs"] as? Int == Int(((metrics["durationMs"] as? Double) ?? 0).rounded(.up)))
            #expect(metrics["initDurationMs"] != nil, "a cold start reports its init")
            #expect(!result.log.contains("START RequestId"), "no text lines in the JSON format")
        }
    }

    /// `systemLogLevel` WARN keeps only what did not succeed; INFO (the default) leaves out `runtimeDone`.
    @Test func theSystemLogLevelFiltersPlatformRecords() async throws {
        try await RuntimeHarness.run([Self.chaos(logging: FunctionLoggingConfig(logFormat: .json, systemLogLevel: .warn))]) { runtime, _ in
            let success = try await runtime.invoke("chaos", payload: ByteBuffer(string: "{}"))
            #expect(Self.records(in: success.log).isEmpty, "\(success.log)")
            let failure = try await runtime.invoke("chaos", payload: ByteBuffer(string: #"{"mode":"error"}"#))
            let records = Self.records(in: failure.log)
            #expect(records.map { $0["type"] as? String } == ["platform.runtimeDone", "platform.report"])
            #expect((records.first?["record"] as? [String: Any])?["status"] as? String == "failure")
            #expect((records.first?["record"] as? [String: Any])?["errorType"] as? String == "Chaos.Error")
        }
        try await RuntimeHarness.run([Self.chaos(logging: FunctionLoggingConfig(logFormat: .json))]) { runtime, _ in
            let result = try await runtime.invoke("chaos", payload: ByteBuffer(string: "{}"))
            #expect(Self.records(in: result.log).map { $0["type"] as? String } == ["platform.start", "platform.report"])
        }
    }

    @Test func levelsNeedTheJSONFormat() {
        let error = #expect(throws: RuntimeError.self) {
            try FunctionRegistry([Self.chaos(logging: FunctionLoggingConfig(logFormat: .text, applicationLogLevel: .debug))])
        }
        #expect(error?.message.contains("log levels can only be set with the JSON log format") == true)
    }

    /// The lines of a log that are platform records.
    static func records(in log: String) -> [[String: Any]] {
        log.split(separator: "\n").compactMap { line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                (object["type"] as? String)?.hasPrefix("platform.") == true
            else { return nil }
            return object
        }
    }
}
