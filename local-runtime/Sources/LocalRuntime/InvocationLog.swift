import Foundation
import NIOCore
import RelayProtocol
import Synchronization

/// The runtime's recent invocations, as the inspector shows them: each one's request id, function,
/// timings, memory, status and log (`START` … `REPORT`). In memory and bounded. The payload is kept
/// for a replay, and shown only with its secrets (upload tokens, authorization headers) cut short.
public final class InvocationLog: Sendable {
    /// One invocation.
    public struct Record: Sendable, Codable, Hashable {
        /// Its request id; the retries of an `Event` invocation share it, as on Lambda.
        public var requestId: String
        /// Which run under that request id: 1, then 2 and 3 for the retries of an `Event` invocation.
        public var attempt: Int
        /// The function.
        public var function: String
        /// The gateway job it worked for, when it did.
        public var jobId: String?
        /// When it began (seconds since 1970).
        public var startedAt: Double
        /// `running`, then `success`, `functionError`, `timedOut`, `environmentFailure`, `cancelled`, or
        /// `refused` (throttled, too large, cancelled before it ran).
        public var status: String
        /// The error type, when it did not succeed.
        public var errorType: String?
        /// Why it was refused.
        public var message: String?
        /// Duration, billed duration and init duration (a cold start), as the `REPORT` line gives them.
        public var durationMs: Double?
        /// The duration rounded up to the millisecond, as Lambda bills it.
        public var billedDurationMs: Int?
        /// The cold start's init duration.
        public var initDurationMs: Double?
        /// Peak memory of its environment.
        public var maxMemoryUsedMB: Int?
        /// The function's memory size.
        public var memorySizeMB: Int
        /// Its log lines (`START`, the function's output, `END`, `REPORT`); empty in lists.
        public var log: [String]
        /// The event it got, secrets cut short; empty in lists.
        public var payload: String
    }

    private struct State {
        var records: [Record] = []
        var payloads: [String: ByteBuffer] = [:]
    }

    private let state = Mutex(State())
    private let changes = Atomic<Int>(0)
    /// Invocations remembered at most; the oldest go first.
    static let remembered = 300
    /// Payload bytes shown and kept for a replay, at most.
    static let payloadLimit = 256 << 10

    init() {}

    /// Grows with every change: a watcher compares it to see that something happened.
    public var version: Int { changes.load(ordering: .relaxed) }

    /// The recent invocations, newest first, without their logs and payloads.
    public func recent() -> [Record] {
        state.withLock { $0.records.reversed().map { record in
            var summary = record
            summary.log = []
            summary.payload = ""
            return summary
        } }
    }

    /// One invocation in full: attempt `attempt` of the request id, or its latest.
    public func record(requestId: String, attempt: Int? = nil) -> Record? {
        state.withLock { $0.records.last { $0.requestId == requestId && (attempt == nil || $0.attempt == attempt) } }
    }

    /// What a replay needs: the function and the payload as it was.
    public func replayable(requestId: String) -> (function: String, jobId: String?, payload: ByteBuffer)? {
        state.withLock { state in
            guard let record = state.records.last(where: { $0.requestId == requestId }), let payload = state.payloads[requestId] else { return nil }
            return (record.function, record.jobId, payload)
        }
    }

    func began(requestID: String, function: FunctionConfiguration, payload: ByteBuffer) {
        let json = try? JSONSerialization.jsonObject(with: Data(payload.readableBytesView.prefix(Self.payloadLimit)))
        let jobId = (json as? [String: Any])?["jobId"] as? String
        let shown = json.map { Self.redacted($0) }.flatMap { try? JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys, .withoutEscapingSlashes]) }
            .map { String(decoding: $0, as: UTF8.self) } ?? String(decoding: payload.readableBytesView.prefix(4096), as: UTF8.self)
        state.withLock { state in
            // A retry runs under its event's request id (records in order: the previous attempt is the last one).
            let attempt = (state.records.last { $0.requestId == requestID }?.attempt ?? 0) + 1
            state.records.append(Record(
                requestId: requestID, attempt: attempt, function: function.name, jobId: jobId, startedAt: Date().timeIntervalSince1970,
                status: "running", memorySizeMB: function.memorySize, log: [], payload: shown))
            // The latest attempt's payload is what a replay sends.
            state.payloads[requestID] = payload.readableBytes <= Self.payloadLimit ? payload : nil
            if state.records.count > Self.remembered {
                let gone = state.records.prefix(state.records.count - Self.remembered).map(\.requestId)
                state.records.removeFirst(state.records.count - Self.remembered)
                for id in gone where !state.records.contains(where: { $0.requestId == id }) { state.payloads[id] = nil }
            }
        }
        changes.add(1, ordering: .relaxed)
    }

    func ended(_ result: InvocationResult) {
        update(result.requestID) { record in
            record.status = result.status.rawValue
            record.errorType = result.errorType
            let milliseconds = (result.duration.inSeconds * 1_000_000).rounded() / 1000
            record.durationMs = milliseconds
            record.billedDurationMs = Int(milliseconds.rounded(.up))
            record.initDurationMs = result.initDuration.map { ($0.inSeconds * 1_000_000).rounded() / 1000 }
            record.maxMemoryUsedMB = result.maxMemoryUsedMB
            record.log = result.log.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
        }
    }

    func refused(requestID: String, _ error: RuntimeError) {
        update(requestID) { record in
            record.status = "refused"
            record.errorType = error.code.description
            record.message = error.message
        }
    }

    private func update(_ requestID: String, _ change: (inout Record) -> Void) {
        state.withLock { state in
            guard let index = state.records.lastIndex(where: { $0.requestId == requestID }) else { return }
            change(&state.records[index])
        }
        changes.add(1, ordering: .relaxed)
    }

    /// The payload with every value under a key that names a secret cut short, however deep.
    static func redacted(_ value: Any) -> Any {
        if let object = value as? [String: Any] {
            return object.reduce(into: [String: Any]()) { result, pair in
                let key = pair.key.lowercased()
                let secret = key.contains("token") || key.contains("authorization") || key.contains("secret") || key.contains("password") || key == "cookie"
                result[pair.key] = secret ? (pair.value as? String).map { RandomToken.shortened($0) } ?? "…" : redacted(pair.value)
            }
        }
        if let array = value as? [Any] { return array.map(redacted) }
        return value
    }
}
