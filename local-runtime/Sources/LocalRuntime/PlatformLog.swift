import Foundation
import RelayProtocol

/// The lines Lambda writes around each invocation, in the function's log format: `START`, `END` and
/// `REPORT` as text, or `platform.start`, `platform.runtimeDone` and `platform.report` records (the
/// Telemetry API's shapes, which CloudWatch receives for the JSON format) filtered by `systemLogLevel`.
struct PlatformLog {
    let function: FunctionConfiguration

    private var json: FunctionLoggingConfig? {
        function.loggingConfig?.logFormat == .json ? function.loggingConfig : nil
    }

    /// Written as the function is handed the event; nil when filtered out.
    func start(requestID: String, at time: Date) -> String? {
        guard let json else { return "START RequestId: \(requestID) Version: $LATEST" }
        guard json.writesPlatformRecord(at: .info) else { return nil }
        return Self.record(time, "platform.start", Start(requestId: requestID, version: "$LATEST"))
    }

    /// Written when the function is done with the event.
    func end(_ result: InvocationResult, at time: Date) -> String? {
        guard let json else { return "END RequestId: \(result.requestID)" }
        // A successful one is detail (DEBUG); one that did not succeed is worth a warning.
        guard json.writesPlatformRecord(at: result.succeeded ? .debug : .warn) else { return nil }
        let metrics = RuntimeDone.Metrics(durationMs: Self.milliseconds(result.duration), producedBytes: result.payload.readableBytes)
        let done = RuntimeDone(requestId: result.requestID, status: Self.status(result), errorType: result.errorType, metrics: metrics)
        return Self.record(time, "platform.runtimeDone", done)
    }

    /// The invocation's report: duration, billed duration, memory, init duration on a cold start.
    func report(_ result: InvocationResult, at time: Date) -> String? {
        guard let json else { return Self.reportLine(result, memorySize: function.memorySize) }
        guard json.writesPlatformRecord(at: result.succeeded ? .info : .warn) else { return nil }
        let milliseconds = Self.milliseconds(result.duration)
        let metrics = Report.Metrics(
            durationMs: milliseconds, billedDurationMs: Int(milliseconds.rounded(.up)), memorySizeMB: function.memorySize,
            maxMemoryUsedMB: result.maxMemoryUsedMB ?? 0, initDurationMs: result.initDuration.map(Self.milliseconds)
        )
        let report = Report(requestId: result.requestID, metrics: metrics, status: Self.status(result), errorType: result.errorType)
        return Self.record(time, "platform.report", report)
    }

    /// The text `REPORT` line.
    static func reportLine(_ result: InvocationResult, memorySize: Int) -> String {
        let milliseconds = milliseconds(result.duration)
        var line = "REPORT RequestId: \(result.requestID)\tDuration: \(String(format: "%.2f", milliseconds)) ms"
        line += "\tBilled Duration: \(Int(milliseconds.rounded(.up))) ms\tMemory Size: \(memorySize) MB"
        line += "\tMax Memory Used: \(result.maxMemoryUsedMB ?? 0) MB"
        if let initDuration = result.initDuration { line += "\tInit Duration: \(String(format: "%.2f", Self.milliseconds(initDuration))) ms" }
        if result.status == .timedOut { line += "\tStatus: timeout" }
        return line
    }

    private struct Envelope<Record: Encodable>: Encodable {
        var time: String
        var type: String
        var record: Record
    }

    private struct Start: Encodable {
        var requestId: String
        var version: String
    }

    private struct RuntimeDone: Encodable {
        struct Metrics: Encodable {
            var durationMs: Double
            var producedBytes: Int
        }
        var requestId: String
        var status: String
        var errorType: String?
        var metrics: Metrics
    }

    private struct Report: Encodable {
        struct Metrics: Encodable {
            var durationMs: Double
            var billedDurationMs: Int
            var memorySizeMB: Int
            var maxMemoryUsedMB: Int
            var initDurationMs: Double?
        }
        var requestId: String
        var metrics: Metrics
        var status: String
        var errorType: String?
    }

    /// The Telemetry API's `status`: `success`, `failure` (the function's error), `timeout` or `error`.
    private static func status(_ result: InvocationResult) -> String {
        switch result.status {
        case .success: return "success"
        case .functionError: return "failure"
        case .timedOut: return "timeout"
        case .environmentFailure, .cancelled: return "error"
        }
    }

    private static func record(_ time: Date, _ type: String, _ record: some Encodable) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        let envelope = Envelope(time: formatter.string(from: time), type: type, record: record)
        return (try? String(decoding: encoder.encode(envelope), as: UTF8.self)) ?? "{}"
    }

    private static func milliseconds(_ duration: Duration) -> Double {
        (duration.inSeconds * 1_000_000).rounded() / 1000
    }
}
