import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import PostgresNIO
import RelayProtocol
import Synchronization
import TestSupport

@testable import Gateway

/// Stands in for the local runtime: records each invocation and lets the test play the function,
/// then settle the invocation with the outcome it chooses.
final class FakeInvoker: Invoker {
    private struct State {
        var events: [InvocationEvent] = []
        var outcomes: [String: CheckedContinuation<Decision, Never>] = [:]
        var invocationCount = 0
        var cancelled: Set<String> = []
    }

    private let state = Mutex(State())
    let names: Set<String>

    init(functions: Set<String> = ["map-render", "chaos"]) {
        self.names = functions
    }

    func hasFunction(named name: String) -> Bool { names.contains(name) }
    func functions() -> [FunctionSummary] { names.sorted().map { FunctionSummary(name: $0) } }

    /// `chaos` may run once at a time here, to exercise per-function limits.
    func concurrencyLimit(function: String) -> Int? { function == "chaos" ? 1 : nil }

    /// What the test decided for an invocation: its final outcome, or a failure to retry (as the runtime would).
    enum Decision: Sendable {
        case outcome(InvocationOutcome)
        case retry(JobError)
    }

    func invoke(
        function: String, event: InvocationEvent, retry: @escaping @Sendable (JobError) async -> InvocationEvent?
    ) async -> InvocationOutcome {
        var event = event
        while true {
            switch await decision(for: event) {
            case .outcome(let outcome):
                return outcome
            case .retry(let failure):
                guard let next = await retry(failure) else { return .failed(failure) }
                event = next
            }
        }
    }

    private func decision(for event: InvocationEvent) async -> Decision {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                state.withLock { state in
                    state.invocationCount += 1
                    state.outcomes["\(event.jobId)/\(event.attempt)"] = continuation
                    state.events.append(event)
                }
            }
        } onCancel: {
            _ = self.state.withLock { $0.cancelled.insert("\(event.jobId)/\(event.attempt)") }
            self.finish(event, .failed(JobError(code: "cancelled", message: "test invoker cancelled")))
        }
    }

    /// The next invocation the gateway made; fails after `timeout` rather than waiting for ever.
    func nextEvent(within timeout: Duration = .seconds(30)) async throws -> InvocationEvent {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let event = state.withLock({ $0.events.isEmpty ? nil : $0.events.removeFirst() }) { return event }
            guard ContinuousClock.now < deadline else { throw TestFailure("no invocation within \(timeout)") }
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    /// Invocations made and not yet taken by the test.
    var pendingCount: Int { state.withLock { $0.events.count } }

    /// The next invocation if there is one now.
    func takeEvent() -> InvocationEvent? {
        state.withLock { $0.events.isEmpty ? nil : $0.events.removeFirst() }
    }

    /// Ends an invocation.
    func finish(_ event: InvocationEvent, _ outcome: InvocationOutcome) {
        let continuation = state.withLock { $0.outcomes.removeValue(forKey: "\(event.jobId)/\(event.attempt)") }
        continuation?.resume(returning: .outcome(outcome))
    }

    /// Fails an attempt the way the runtime retries: the gateway prepares the next attempt, whose event
    /// then comes out of `nextEvent()`.
    func failAndRetry(_ event: InvocationEvent, _ failure: JobError) {
        let continuation = state.withLock { $0.outcomes.removeValue(forKey: "\(event.jobId)/\(event.attempt)") }
        continuation?.resume(returning: .retry(failure))
    }

    var invocationCount: Int { state.withLock { $0.invocationCount } }

    /// How many invocations the gateway cancelled.
    var cancelledCount: Int { state.withLock { $0.cancelled.count } }

    /// Whether the gateway cancelled that invocation.
    func wasCancelled(_ event: InvocationEvent) -> Bool {
        state.withLock { $0.cancelled.contains("\(event.jobId)/\(event.attempt)") }
    }
}

/// A response as the tests look at it.
struct HTTPResult: Sendable {
    var status: Int
    var headers: [String: String]
    var body: ByteBuffer

    var text: String { String(buffer: body) }
    var errorCode: String? { try? JSONDecoder().decode(ErrorBody.self, from: Data(body.readableBytesView)).error.code }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try JSONDecoder().decode(T.self, from: Data(body.readableBytesView)) }
}

/// A gateway on a real socket (port 0) with a fake invoker, its own state directory, and helpers
/// that act as client and as function.
struct GatewayHarness: Sendable {
    /// A 4 KiB chunk cap, so tests make multi-chunk images of a few kilobytes.
    static let smallChunks: @Sendable (inout GatewayConfiguration) -> Void = { $0.chunkSize = 4096 }

    let gateway: Gateway
    let invoker: FakeInvoker
    let baseURL: String
    let stateDirectory: URL

    static func run(
        configure: (inout GatewayConfiguration) -> Void = { _ in },
        stateDirectory: URL? = nil,
        _ body: @Sendable (GatewayHarness) async throws -> Void
    ) async throws {
        let directory = stateDirectory ?? FileManager.default.temporaryDirectory.appendingPathComponent("gw-\(UUID().uuidString)")
        defer { if stateDirectory == nil { try? FileManager.default.removeItem(at: directory) } }
        var configuration = GatewayConfiguration()
        configuration.port = 0
        configuration.stateDirectory = directory
        configuration.maxConcurrency = 2
        configuration.webRoot = nil  // the page is tested end to end; here every path is the API's
        // The fake's invocations end only when a test ends them: a test's last job must not hold the
        // harness's shutdown for the real grace.
        configuration.shutdownGrace = .milliseconds(200)
        configure(&configuration)
        let invoker = FakeInvoker()
        var logger = Logger(label: "gateway-test")
        logger.logLevel = Self.logLevel
        // With PostgreSQL, a schema per harness named after its state folder (a test that reopens the
        // folder reopens the ledger too), dropped with the folder. Schemas, not databases: creating a
        // database copies a template and checkpoints, which stalled the tests running beside it.
        let schema = schemaName(for: directory)
        if let admin = Self.postgres {
            var url = URLComponents(string: admin)!
            url.queryItems = [URLQueryItem(name: "search_path", value: schema)]
            configuration.store = .postgres(url.string!)
        }
        do {
            try await serve(configuration, invoker: invoker, directory: directory, logger: logger, body)
        } catch {
            if let admin = Self.postgres, stateDirectory == nil { await Self.dropSchema(schema, admin: admin, logger: logger) }
            throw error
        }
        if let admin = Self.postgres, stateDirectory == nil { await Self.dropSchema(schema, admin: admin, logger: logger) }
    }

    /// A second gateway on the same PostgreSQL store as `other` (its own state folder, fake invoker and
    /// port): another instance behind the same load balancer.
    static func run(sharingStoreOf other: GatewayHarness, _ body: @Sendable (GatewayHarness) async throws -> Void) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gw-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        var configuration = other.gateway.configuration
        configuration.stateDirectory = directory
        var logger = Logger(label: "gateway-test-b")
        logger.logLevel = Self.logLevel
        try await serve(configuration, invoker: FakeInvoker(), directory: directory, logger: logger, body)
    }

    private static func serve(
        _ configuration: GatewayConfiguration, invoker: FakeInvoker, directory: URL, logger: Logger, _ body: @Sendable (GatewayHarness) async throws -> Void
    ) async throws {
        let gateway = try await Gateway.open(configuration: configuration, invoker: invoker, logger: logger)
        try await withLiveApplication(logger: logger, before: gateway.storeServices, after: gateway.services) { onServerRunning in
            Application(
                router: gateway.buildRouter(), server: gateway.httpServer(), configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                onServerRunning: onServerRunning, logger: logger)
        } _: { port in
            let url = "http://127.0.0.1:\(port)"
            gateway.setBaseURL(url)
            try await body(GatewayHarness(gateway: gateway, invoker: invoker, baseURL: url, stateDirectory: directory))
        }
    }

    /// `CHUNKRELAY_TEST_POSTGRES=postgres://USER@HOST:PORT/DB`: the suite runs against the PostgreSQL
    /// store in that database, a schema per harness. `.ci/run` runs it both ways.
    static let postgres = ProcessInfo.processInfo.environment["CHUNKRELAY_TEST_POSTGRES"].flatMap { $0.isEmpty ? nil : $0 }

    /// `CHUNKRELAY_TEST_LOG_LEVEL` (debug, info…) for a look at what the gateways did; warnings otherwise.
    static let logLevel = ProcessInfo.processInfo.environment["CHUNKRELAY_TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .warning

    /// Whether this run's ledger is SQLite (the default) rather than PostgreSQL.
    static var usesSQLite: Bool { postgres == nil }

    private static func schemaName(for directory: URL) -> String {
        "gw_" + directory.lastPathComponent.lowercased().filter { $0.isLetter || $0.isNumber }
    }

    /// With PostgreSQL: runs `statements` (`SCHEMA` replaced by this harness's schema) one by one as the
    /// administrator, beside the gateway, as a database administrator would.
    func administer(_ statements: [String]) async throws {
        guard let admin = Self.postgres else { throw TestFailure("no PostgreSQL store") }
        let schema = Self.schemaName(for: stateDirectory)
        try await Self.withAdminConnection(admin, logger: Logger(label: "admin")) { connection in
            for statement in statements {
                try await connection.query(PostgresQuery(unsafeSQL: statement.replacingOccurrences(of: "SCHEMA", with: schema)), logger: Logger(label: "admin"))
            }
        }
    }

    static func dropSchema(_ name: String, admin: String, logger: Logger) async {
        try? await withAdminConnection(admin, logger: logger) { connection in
            try await connection.query(PostgresQuery(unsafeSQL: "DROP SCHEMA IF EXISTS \(name) CASCADE"), logger: logger)
        }
    }

    private static func withAdminConnection(_ admin: String, logger: Logger, _ body: (PostgresConnection) async throws -> Void) async throws {
        let connection = try await PostgresConnection.connect(configuration: try PostgresURL(admin).configuration, id: 1, logger: logger)
        do {
            try await body(connection)
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
    }

    /// What the spool holds: attempt files (`JOB.ATTEMPT.part`), or with PostgreSQL the attempts whose
    /// chunk rows are kept, named alike; a retrieve-mode job's sealed image counts under `keptImages`.
    func keptSpool() async throws -> [String] {
        try await kept(images: false)
    }

    /// The images kept for retrieval (`JOB.img`): files, or a sealed retrieve-mode attempt's rows.
    func keptImages() async throws -> [String] {
        try await kept(images: true)
    }

    private func kept(images: Bool) async throws -> [String] {
        guard let storage = gateway.lifecycle.spool as? PostgresChunkStorage else {
            let folder = stateDirectory.appendingPathComponent(images ? "images" : "spool").path
            return try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
        }
        var names: [String] = []
        let rows = try await storage.client.query(
            """
            SELECT DISTINCT d.job_id, d.attempt, (j.delivery = 'retrieve' AND j.total_bytes IS NOT NULL AND d.attempt = j.attempt)
            FROM chunkrelay_chunk_data d JOIN chunkrelay_job j ON j.id = d.job_id
            """)
        for try await (job, attempt, isImage) in rows.decode((String, Int, Bool).self) where isImage == images {
            names.append(images ? "\(job).img" : "\(job).\(attempt).part")
        }
        return names.sorted()
    }

    // MARK: HTTP

    func request(_ method: HTTPMethod, _ path: String, headers: [(String, String)] = [], body: ByteBuffer? = nil) async throws -> HTTPResult {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(body) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 256 << 20)
        var flat: [String: String] = [:]
        for header in response.headers { flat[header.name.lowercased()] = header.value }
        return HTTPResult(status: Int(response.status.code), headers: flat, body: bytes)
    }

    func json(_ method: HTTPMethod, _ path: String, _ text: String) async throws -> HTTPResult {
        try await request(method, path, headers: [("Content-Type", "application/json")], body: ByteBuffer(string: text))
    }

    // MARK: Client side

    /// Creates a retrieve-mode job and waits for the gateway to invoke its function.
    func createJob(function: String = "map-render", params: String = "{}") async throws -> (JobCreated, InvocationEvent) {
        let response = try await json(.POST, "/v1/jobs", #"{"function":"\#(function)","params":\#(params),"delivery":"retrieve"}"#)
        guard response.status == 202 else { throw TestFailure("create answered \(response.status): \(response.text)") }
        let created = try response.decode(JobCreated.self)
        return (created, try await invocation(of: created))
    }

    /// The invocation of the job just created (the next one); a failure says where the job is instead.
    func invocation(of created: JobCreated) async throws -> InvocationEvent {
        let event: InvocationEvent
        do {
            event = try await invoker.nextEvent()
        } catch {
            let status = try? await job(created.id)
            throw TestFailure("\(error); job \(created.id) is \(status.map { "\($0.state) \($0.error.map { "\($0.code): \($0.message)" } ?? "")" } ?? "unreadable")")
        }
        guard event.jobId == created.id else {
            let other = try? await job(event.jobId)
            throw TestFailure("invoked \(event.jobId) (attempt \(event.attempt), \(other.map { "\($0.state)" } ?? "unreadable")), expected \(created.id)")
        }
        return event
    }

    func job(_ id: String) async throws -> JobStatus {
        try await request(.GET, "/v1/jobs/\(id)").decode(JobStatus.self)
    }

    // MARK: Function side

    func putChunk(_ event: InvocationEvent, index: Int, bytes: [UInt8], digest: String? = nil, token: String? = nil) async throws -> HTTPResult {
        try await request(
            .PUT, "/v1/jobs/\(event.jobId)/chunks/\(index)",
            headers: [
                ("Authorization", "Bearer \(token ?? event.uploadToken)"),
                ("Content-Digest", digest ?? ContentDigest(of: bytes).headerValue),
            ],
            body: ByteBuffer(bytes: bytes)
        )
    }

    func complete(_ event: InvocationEvent, chunks: Int, bytes: Int, sha256: String, contentType: String = "image/png") async throws -> HTTPResult {
        try await request(
            .POST, "/v1/jobs/\(event.jobId)/complete",
            headers: [("Authorization", "Bearer \(event.uploadToken)"), ("Content-Type", "application/json")],
            body: ByteBuffer(string: #"{"chunks":\#(chunks),"bytes":\#(bytes),"sha256":"\#(sha256)","contentType":"\#(contentType)"}"#)
        )
    }

    /// Uploads an image as a well-behaved function would (in the order given), completes, and ends the invocation.
    func uploadImage(_ image: [UInt8], for event: InvocationEvent, order: [Int]? = nil) async throws {
        let count = max(1, (image.count + event.chunkSize - 1) / event.chunkSize)
        for index in order ?? Array(0..<count) {
            let chunk = Array(image[(index * event.chunkSize)..<min(image.count, (index + 1) * event.chunkSize)])
            let response = try await putChunk(event, index: index, bytes: chunk)
            guard response.status == 201 else { throw TestFailure("chunk \(index): \(response.status) \(response.text)") }
        }
        let completed = try await complete(event, chunks: count, bytes: image.count, sha256: ContentDigest(of: image).hex)
        guard completed.status == 200 else { throw TestFailure("complete: \(completed.status) \(completed.text)") }
        invoker.finish(event, .succeeded)
    }

    /// A ready image: job created, uploaded and completed.
    func readyImage(bytes: Int, seed: UInt8 = 1) async throws -> (JobCreated, [UInt8]) {
        let image = Self.pattern(bytes, seed: seed)
        let (created, event) = try await createJob()
        try await uploadImage(image, for: event)
        return (created, image)
    }

    static func pattern(_ count: Int, seed: UInt8) -> [UInt8] {
        var state = UInt32(seed) &* 2_654_435_761 | 1
        return (0..<count).map { _ in
            state ^= state << 13
            state ^= state >> 17
            state ^= state << 5
            return UInt8(truncatingIfNeeded: state)
        }
    }

    /// A GET of an image as a download manager makes its requests one after another: a transfer's claim
    /// is let go just after its client has the last byte, so the next request may find it still held
    /// (409 `image_in_flight`) for a moment, and is made again.
    func download(_ path: String, range: String? = nil) async throws -> HTTPResult {
        let headers = range.map { [("Range", $0)] } ?? []
        let deadline = ContinuousClock.now + .seconds(10)
        while true {
            let result = try await request(.GET, path, headers: headers)
            guard result.errorCode == "image_in_flight", ContinuousClock.now < deadline else { return result }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    /// Polls until `condition` holds (state changes made by other tasks), failing after `timeout`.
    func eventually(_ what: @autoclosure () -> String, timeout: Duration = .seconds(10), _ condition: @Sendable () async throws -> Bool) async throws {
        try await TestSupport.eventually(what(), within: timeout, condition)
    }
}


/// An event-stream client for tests: real HTTP, parsed with the protocol's WHATWG parser.
struct EventStreamReader {
    private var iterator: HTTPClientResponse.Body.AsyncIterator
    private var parser = ServerSentEventParser()
    private var pending: [ServerSentEvent] = []
    /// Comments seen so far (heartbeats).
    private(set) var comments = 0
    let status: Int

    init(_ harness: GatewayHarness, jobId: String, lastEventID: String? = nil, query: String = "") async throws {
        var request = HTTPClientRequest(url: "\(harness.baseURL)/v1/jobs/\(jobId)/events\(query)")
        if let lastEventID { request.headers.add(name: "Last-Event-ID", value: lastEventID) }
        // A bound, not a timing claim: a stream that never ends fails the test after it.
        let response = try await Self.client.execute(request, deadline: .now() + .minutes(3))
        status = Int(response.status.code)
        iterator = response.body.makeAsyncIterator()
    }

    /// A client whose pool allows many long-lived streams at once (the shared one stops at 8 per host).
    static let client: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    /// Reads until `count` comments (heartbeats) have arrived; events meanwhile are kept for `next()`.
    mutating func readComments(atLeast count: Int) async throws {
        while comments < count {
            guard let buffer = try await iterator.next() else { throw TestFailure("the stream ended after \(comments) comments") }
            let bytes = Array(buffer.readableBytesView)
            comments += Self.countComments(bytes)
            pending += parser.push(bytes)
        }
    }

    /// The next event, or nil when the stream ended.
    mutating func next() async throws -> ServerSentEvent? {
        while pending.isEmpty {
            guard let buffer = try await iterator.next() else { return nil }
            let bytes = Array(buffer.readableBytesView)
            comments += Self.countComments(bytes)
            pending = parser.push(bytes)
        }
        return pending.removeFirst()
    }

    /// Events until (and including) the first that satisfies `stop`, or the end of the stream.
    mutating func read(until stop: (ServerSentEvent) -> Bool) async throws -> [ServerSentEvent] {
        var events: [ServerSentEvent] = []
        while let event = try await next() {
            events.append(event)
            if stop(event) { break }
        }
        return events
    }

    private static func countComments(_ bytes: [UInt8]) -> Int {
        // Good enough for tests: a heartbeat is ": \n\n" and never split by the server.
        var count = 0
        var index = 0
        while index + 1 < bytes.count {
            if bytes[index] == UInt8(ascii: ":") && (index == 0 || bytes[index - 1] == UInt8(ascii: "\n")) { count += 1 }
            index += 1
        }
        return count
    }
}

extension ServerSentEvent {
    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any]) ?? [:] }
    var chunkBytes: [UInt8] { Array(Data(base64Encoded: data.replacingOccurrences(of: "\n", with: "")) ?? Data()) }
}

extension GatewayHarness {
    /// Creates a stream-mode job and waits for its invocation.
    func createStreamJob(function: String = "map-render") async throws -> (JobCreated, InvocationEvent) {
        let response = try await json(.POST, "/v1/jobs", #"{"function":"\#(function)","delivery":"stream"}"#)
        guard response.status == 202 else { throw TestFailure("create answered \(response.status): \(response.text)") }
        let created = try response.decode(JobCreated.self)
        return (created, try await invocation(of: created))
    }

    func chunk(_ image: [UInt8], _ index: Int, size: Int) -> [UInt8] {
        Array(image[(index * size)..<min(image.count, (index + 1) * size)])
    }
}
