import Foundation
import NIOCore

/// How one invocation ended.
public struct InvocationResult: Sendable {
    /// The kind of ending.
    public enum Status: String, Sendable {
        /// The function returned a response.
        case success
        /// The function reported an error (or its response broke a limit).
        case functionError
        /// The deadline passed and the environment was killed.
        case timedOut
        /// The environment died or failed to initialise.
        case environmentFailure
        /// The invoker cancelled the invocation; the environment was killed.
        case cancelled
    }

    /// The kind of ending.
    public var status: Status
    /// The response, or the error as Lambda's JSON (`errorType`, `errorMessage`).
    public var payload: ByteBuffer
    /// The error type (`Unhandled`, `Runtime.ExitError`, …) for anything but success.
    public var errorType: String?
    /// The request id.
    public var requestID: String
    /// Time from handing the event over to the outcome.
    public var duration: Duration
    /// Time the environment took to initialise, on a cold start.
    public var initDuration: Duration?
    /// Peak memory of the environment in MB, when known.
    public var maxMemoryUsedMB: Int?
    /// The invocation's log as Lambda frames it: `START`, the function's output, `END`, `REPORT`.
    public var log: String = ""

    /// The last 4 KB of the log, base64-encoded, as Lambda returns it for `X-Amz-Log-Type: Tail`.
    public var logTail: String { Data(log.utf8.suffix(4096)).base64EncodedString() }

    /// Whether the function succeeded.
    public var succeeded: Bool { status == .success }

    /// The error message inside an error payload.
    public var errorMessage: String? {
        guard status != .success else { return nil }
        return LambdaErrorPayload.message(in: payload)
    }
}
