import FaultInjection
import Foundation

/// How the local runtime runs: where it listens, where functions come from, its defaults.
public struct RuntimeConfiguration: Sendable {
    /// The region reported to functions (`AWS_REGION`) and in ARNs.
    public static let region = "us-east-1"
    /// The account id in ARNs.
    public static let account = "000000000000"

    /// Host of the Invoke API and of every environment's Runtime API.
    public var host: String = "127.0.0.1"
    /// Port of the Invoke API; 0 picks a free one.
    public var port: Int = 9001
    /// The package that Swift functions are built from when their executable is missing.
    public var packageRoot: URL?
    /// Folders searched for built Swift function executables.
    public var binDirectories: [URL] = []
    /// Concurrent environments of one function when its `reservedConcurrency` is not set.
    public var defaultConcurrency: Int = 10
    /// Pause before the first retry of a failed asynchronous invocation, doubled for the second.
    /// Lambda waits about a minute, then two; locally that would only slow tests and demos down.
    public var retryBackoff: Duration = .milliseconds(200)
    /// An environment idle this long is shut down (the next invocation is a cold start again).
    public var idleTimeout: Duration = .seconds(300)
    /// Asynchronous (`Event`) invocations accepted but not finished, at most; one beyond it is throttled
    /// (`TooManyRequestsException`) rather than queued without bound.
    public var maximumPendingEvents: Int = 1000
    /// Grace period between `SIGTERM` and `SIGKILL` when stopping environments.
    public var shutdownGrace: Duration = .seconds(2)
    /// Faults on demand on Function URLs (`serve --faults`); nil: `X-ChunkRelay-Fault` means nothing there.
    public var faults: FaultInjector?

    /// The defaults.
    public init() {}

    /// The folder of the running executable: where SwiftPM puts sibling products.
    public static var ownBinDirectory: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    }
}
