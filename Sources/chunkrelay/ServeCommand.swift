import ArgumentParser
import ChunkRelayServer
import FaultInjection
import Foundation
import Logging
import ServiceLifecycle

#if os(Linux)
/// glibc's `mallopt(3)`, which Swift's Glibc module does not export (it lives in `malloc.h`).
@_silgen_name("mallopt") private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
/// `M_MMAP_THRESHOLD` from glibc's `malloc.h`.
private let glibcMmapThreshold: Int32 = -3
#endif

/// `chunkrelay serve`: gateway and runtime in one process, state in an embedded SQLite file.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the gateway (default 127.0.0.1:8080) and the local runtime (default 127.0.0.1:9001)."
    )

    @Option(help: "Host to listen on.") var host = "127.0.0.1"
    @Option(help: "Gateway port (0 picks a free one).") var port = 8080
    @Option(name: .customLong("runtime-port"), help: "Lambda Invoke API port of the local runtime.") var runtimePort = 9001
    @Option(name: .customLong("state-dir"), help: "Where the SQLite ledger, spool and images live (created if missing).")
    var stateDirectory = ".chunkrelay"
    @Option(name: .customLong("functions"), help: "Folder of functions, one subfolder with a function.json each.")
    var functionsDirectory = "functions"
    @Option(name: .customLong("chunk-size"), help: "Chunk size cap in bytes handed to functions (1 KiB ... 6 MiB).")
    var chunkSize = 1 << 20
    @Option(name: .customLong("max-concurrency"), help: "Function invocations running at once; more jobs queue FIFO.")
    var maxConcurrency = 4
    @Option(name: .customLong("image-ttl"), help: "Seconds a ready image waits for its one retrieval.") var imageTTL = 600
    @Option(name: .customLong("web-root"), help: "Folder of the page served at / (the browser sample).")
    var webRoot = "samples/browser"
    @Option(name: .customLong("heartbeat"), help: "Seconds between heartbeat comments on idle event streams.")
    var heartbeat = 15
    @Option(name: .customLong("stream-grace"), help: "Seconds a finished stream can still be resumed.")
    var streamGrace = 60
    @Option(name: .customLong("client-grace"), help: "Seconds a stream job may have no client before it is cancelled.")
    var clientGrace = 30
    @Option(name: .customLong("max-queue"), help: "Jobs waiting at most; more are refused with 429.") var maxQueue = 1000
    @Option(name: .customLong("max-connections"), help: "Open connections per server at most; more get 503 with Retry-After.")
    var maxConnections = 1024
    @Option(name: .customLong("idle-timeout"), help: "Seconds a connection may sit with no request in progress.") var idleTimeout = 30
    @Option(name: .customLong("body-timeout"), help: "Seconds a request body may stall before the connection is closed.")
    var bodyTimeout = 30
    @Option(name: .customLong("shutdown-grace"), help: "Seconds running invocations may finish at SIGTERM/SIGINT before they are stopped and requeued.")
    var shutdownGrace = 10
    @Option(name: .customLong("finished-retention"), help: "Seconds a finished job stays in the ledger (a consumed key answers 410, then 404).")
    var finishedRetention = 86_400
    @Option(name: .customLong("max-pending-events"), help: "Asynchronous (Event) invocations waiting or running at most; more get TooManyRequestsException.")
    var maxPendingEvents = 1000
    @OptionGroup var templateOptions: TemplateOptions
    @Option(name: .customLong("api-port"), help: "Port of the template's Api and HttpApi events (as sam local start-api; 0 picks a free one).")
    var apiPort = 3000
    @Option(name: .customLong("env-vars"), help: "SAM CLI's environment file (JSON: \"Parameters\" for every function, a section per function name), merged over function.json's environment.")
    var environmentFile: String?
    @Option(help: "Where jobs, the queue and the chunk ledger live: sqlite (in --state-dir) or postgres://USER@HOST:PORT/DB[?search_path=SCHEMA].")
    var store = "sqlite"
    @Option(name: .customLong("public-url"), help: "The URL functions post chunks to, when it is not this gateway's own (a load balancer in front of several).")
    var publicURL: String?
    @Flag(help: "Rebuild a function when its sources change and retire its warm environments: the next invocation runs the new code.")
    var watch = false
    @Option(
        name: .customLong("min-free-space"),
        help: "With the SQLite store: refuse new jobs and chunk uploads (507, and /healthz 503) while the state folder's disk has less free space than this (bytes, or KiB/MiB/GiB).")
    var minFreeSpace = ByteCount(bytes: ServeConfiguration().gateway.minFreeSpace)
    @Flag(
        name: .customLong("aws-streaming-bandwidth"),
        help: "Stream every function's responses (Function URLs, InvokeWithResponseStream) at Lambda's bandwidth: the first 6 MB at full speed, then 2 MB/s.")
    var awsStreamingBandwidth = false
    @Flag(help: "Honour X-ChunkRelay-Fault request headers on the gateway's API and on Function URLs (reset-after=1MiB, stall, bandwidth=…/s, latency=…, status=503): for testing clients.")
    var faults = false
    @Option(name: .customLong("fault-rules"), help: "A JSON file of fault rules ({\"rules\": [{\"path\": \"/v1/images/*\", \"every\": 2, \"fault\": \"reset-after=1MiB\"}]}); turns --faults on.")
    var faultRules: String?
    @Option(name: .customLong("inspector-token"), help: "Let clients off this machine use the inspector (/inspect) and replay with this token (Authorization: Bearer, or ?token=); without it they answer loopback only.")
    var inspectorToken: String?
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.") var logLevel = "info"

    func run() async throws {
        #if os(Linux)
        // Chunk-sized buffers (up to 6 MiB) always get their own mapping, returned to the system when
        // freed. glibc otherwise raises its mmap threshold after the first such free and serves later
        // ones from per-thread arenas that keep their peak: at a 4 MiB cap that alone took the
        // gateway's peak RSS from 78 to 120 MiB (`bench data-path`), past the 64 MiB + 4 × cap budget.
        _ = glibcMallopt(glibcMmapThreshold, 128 << 10)
        #endif
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "chunkrelay")
        var configuration = ServeConfiguration()
        configuration.gateway.host = host
        configuration.gateway.port = port
        configuration.gateway.stateDirectory = URL(fileURLWithPath: stateDirectory, isDirectory: true)
        configuration.gateway.chunkSize = chunkSize
        configuration.gateway.maxConcurrency = maxConcurrency
        configuration.gateway.imageTTL = .seconds(imageTTL)
        configuration.gateway.webRoot = URL(fileURLWithPath: webRoot, isDirectory: true)
        configuration.gateway.heartbeatInterval = .seconds(heartbeat)
        configuration.gateway.streamGrace = .seconds(streamGrace)
        configuration.gateway.clientGrace = .seconds(clientGrace)
        configuration.gateway.maxQueueLength = maxQueue
        configuration.gateway.shutdownGrace = .seconds(shutdownGrace)
        configuration.gateway.connections.maxConnections = maxConnections
        configuration.gateway.connections.idleTimeout = .seconds(idleTimeout)
        configuration.gateway.connections.bodyReadTimeout = .seconds(bodyTimeout)
        configuration.runtime.host = host == "0.0.0.0" ? "127.0.0.1" : host
        configuration.runtime.port = runtimePort
        configuration.runtime.maximumPendingEvents = maxPendingEvents
        configuration.gateway.finishedRetention = .seconds(finishedRetention)
        configuration.gateway.minFreeSpace = minFreeSpace.bytes
        configuration.awsStreamingBandwidth = awsStreamingBandwidth
        configuration.functionsDirectory = URL(fileURLWithPath: functionsDirectory, isDirectory: true)
        configuration.environmentFile = environmentFile.map { URL(fileURLWithPath: $0) }
        try templateOptions.checked().apply(to: &configuration)
        configuration.apiPort = apiPort
        configuration.watch = watch
        configuration.publicURL = publicURL.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        configuration.gateway.store = store == "sqlite" ? .sqlite : .postgres(store)
        configuration.inspectorToken = inspectorToken.flatMap { $0.isEmpty ? nil : $0 }
        if faults || faultRules != nil {
            do {
                let rules = try faultRules.map { try FaultRule.load(contentsOf: URL(fileURLWithPath: $0)) } ?? []
                configuration.gateway.faults = FaultInjector(rules: rules, logger: logger)
            } catch {
                throw ValidationError("\(error)")
            }
            logger.warning("faults on demand are on (\(faultRules.map { "rules from \($0), " } ?? "")X-ChunkRelay-Fault honoured): responses may break on purpose")
        }
        let server: ChunkRelayServer
        do {
            server = try await ChunkRelayServer.build(configuration, logger: logger)
        } catch {
            throw ValidationError("\(error)")
        }
        let group = ServiceGroup(
            configuration: .init(services: [server], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        )
        try await group.run()
    }
}
