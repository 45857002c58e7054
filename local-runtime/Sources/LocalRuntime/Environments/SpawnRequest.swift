import NIOCore

/// An environment for `run()` to start.
struct SpawnRequest: Sendable {
    var environment: ExecutionEnvironment?
    var commandLine: [String] = []
    var event: (function: String, payload: ByteBuffer, trace: XRayTraceID, requestID: String)?
}
