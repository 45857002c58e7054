import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import NIOCore
import RelayProtocol

extension Gateway {
    /// The gateway's HTTP API (DESIGN.md "Interfaces"), errors mapped by one middleware; `adding` puts
    /// more routes on it (the inspector's), under the same error mapping.
    public func buildRouter(adding: (Router<GatewayRequestContext>) -> Void = { _ in }) -> Router<GatewayRequestContext> {
        let router = Router(context: GatewayRequestContext.self)
        router.add(middleware: ErrorMiddleware())
        if let faults = configuration.faults {
            router.add(middleware: FaultMiddleware(injector: faults, store: lifecycle.store))
        }
        if let webRoot = configuration.webRoot, FileManager.default.fileExists(atPath: webRoot.appendingPathComponent("index.html").path) {
            // The page at `/` (samples/browser): the one place a person sees a generation arrive.
            router.add(middleware: WebPageMiddleware(files: FileMiddleware(webRoot.path, searchForIndexHtml: true, logger: logger)))
        }
        router.get("/healthz") { _, _ in
            // A load balancer in front stops sending work here while running jobs finish.
            guard !self.draining.load(ordering: .relaxed) else { throw Self.shuttingDown }
            // Short of storage, new work is refused: the balancer's cue to send it elsewhere.
            if let shortage = self.lifecycle.storage.shortage { throw self.lifecycle.storage.refusal(shortage, "new work").unavailable }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: #"{"status":"ok"}"#)))
        }
        router.get("/metrics") { _, _ in try await self.metrics() }
        router.get("/v1/functions") { _, _ in try Self.json(FunctionList(functions: self.invoker.functions())) }
        router.post("/v1/jobs") { request, context in try await self.createJob(request, context: context) }
        router.get("/v1/jobs/{id}") { _, context in try await self.getJob(context) }
        router.get("/v1/jobs/{id}/events") { request, context in try await self.events(request, context: context) }
        router.delete("/v1/jobs/{id}") { _, context in try await self.cancelJob(context) }
        router.put("/v1/jobs/{id}/chunks/{index}") { request, context in try await self.putChunk(request, context: context) }
        router.post("/v1/jobs/{id}/complete") { request, context in try await self.complete(request, context: context) }
        router.get("/v1/images/{key}") { request, context in try await self.image(request, context: context, head: false) }
        router.head("/v1/images/{key}") { request, context in try await self.image(request, context: context, head: true) }
        adding(router)
        Self.answerOtherMethods(on: router)
        return router
    }

    /// A known path asked with a method it does not take is `405` with `Allow` (the router alone says 404).
    static func answerOtherMethods(on router: Router<GatewayRequestContext>) {
        var allowed: [String: (path: RouterPath, methods: Set<HTTPRequest.Method>)] = [:]
        for route in router.routes {
            allowed[route.path.description, default: (route.path, [])].methods.insert(route.method)
        }
        let methods: [HTTPRequest.Method] = [.get, .head, .post, .put, .delete, .patch, .options, .trace, HTTPRequest.Method("QUERY")!]
        for (path, known) in allowed.values {
            let allow = known.map(\.rawValue).sorted().joined(separator: ", ")
            for method in methods where !known.contains(method) {
                router.on(path, method: method) { request, _ -> Response in
                    throw GatewayError(.methodNotAllowed, .methodNotAllowed, "\(request.method.rawValue) is not allowed here; use \(allow)", headers: [.allow: allow])
                }
            }
        }
    }

    /// The HTTP/1.1 server to run `buildRouter()` on: the connection limits and guard of `configuration.connections`.
    /// What a request that would start work (or a health check) gets while the gateway drains.
    static var shuttingDown: GatewayError {
        GatewayError(.serviceUnavailable, .shuttingDown, "the gateway is shutting down; retry when it is back", headers: [.retryAfter: "5"])
    }

    public func httpServer() -> HTTPServerBuilder {
        configuration.connections.httpServer(counting: connections, shapingFaults: configuration.faults != nil)
    }

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var headers = headers
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
    }

    /// Reads a JSON body of at most `RelayLimits.maximumJSONBody` bytes.
    static func decodeJSON<T: Decodable>(_ type: T.Type, from request: Request) async throws -> T {
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: RelayLimits.maximumJSONBody)
        } catch {
            throw GatewayError(.contentTooLarge, .bodyTooLarge, "a JSON body may be at most \(RelayLimits.maximumJSONBody) bytes")
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(body.readableBytesView))
        } catch let DecodingError.keyNotFound(key, _) {
            throw GatewayError(.badRequest, .invalidRequest, "missing field '\(key.stringValue)'")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw GatewayError(.badRequest, .invalidRequest, "wrong type for '\(path)'")
        } catch let DecodingError.dataCorrupted(context) {
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw GatewayError(.badRequest, .invalidRequest, path.isEmpty ? "the body is not valid JSON" : "invalid value for '\(path)'")
        } catch {
            throw GatewayError(.badRequest, .invalidRequest, "the body is not valid JSON")
        }
    }

    /// A job id from the path, checked for shape before it reaches the ledger.
    static func jobID(_ context: GatewayRequestContext) throws -> String {
        let id = try context.parameters.require("id")
        guard RandomToken.isWellFormed(id) else { throw GatewayError(.notFound, .jobNotFound, "no job \(id)") }
        return id
    }

    func existingJob(_ context: GatewayRequestContext) async throws -> JobRecord {
        let id = try Self.jobID(context)
        guard let job = try await lifecycle.store.job(id: id) else { throw GatewayError(.notFound, .jobNotFound, "no job \(id)") }
        return job
    }

    func createJob(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let created = try await createJob(try await Self.decodeJSON(CreateJobRequest.self, from: request))
        return try Self.json(created, status: .accepted, headers: [.location: "/v1/jobs/\(created.id)"])
    }

    /// Queues a job for a known function, unless the gateway drains or the queue is full.
    func createJob(_ create: CreateJobRequest) async throws -> JobCreated {
        guard invoker.hasFunction(named: create.function) else {
            throw GatewayError(.notFound, .functionNotFound, "no function named '\(create.function)'")
        }
        guard !draining.load(ordering: .relaxed) else { throw Self.shuttingDown }
        // A soft bound (two requests can both see one free place): it is there to keep a flood of
        // jobs from growing the ledger without end, not to count exactly.
        guard (try await lifecycle.store.countsByState()[.queued] ?? 0) < configuration.maxQueueLength else {
            throw GatewayError(
                .tooManyRequests, .queueFull, "\(configuration.maxQueueLength) jobs are already waiting; retry later",
                headers: [.retryAfter: "5"]
            )
        }
        let job = try await lifecycle.create(create, chunkSize: configuration.chunkSize)
        return JobCreated(id: job.id, state: .queued, events: "/v1/jobs/\(job.id)/events", image: job.imageKey.map { "/v1/images/\($0)" })
    }

    func getJob(_ context: GatewayRequestContext) async throws -> Response {
        try Self.json(try await status(of: try await existingJob(context)))
    }

    func cancelJob(_ context: GatewayRequestContext) async throws -> Response {
        let job = try await existingJob(context)
        try await lifecycle.cancel(jobId: job.id)
        return try Self.json(try await status(of: try await existingJob(context)))
    }

    func metrics() async throws -> Response {
        var lines = ["# HELP chunkrelay_jobs Jobs in the ledger by state.", "# TYPE chunkrelay_jobs gauge"]
        let counts = try await lifecycle.store.countsByState()
        for state in JobState.allCases {
            lines.append("chunkrelay_jobs{state=\"\(state.rawValue)\"} \(counts[state] ?? 0)")
        }
        // The size of every structure that grows with clients or jobs, so a leak shows as a rising line.
        let held = lifecycle.gauges
        let rows = try await lifecycle.store.rowCounts()
        var gauges: [(String, String, Int)] = [
            ("chunkrelay_open_connections", "Connections open to the gateway, those being refused over the limit included.", connections.count),
            ("chunkrelay_image_transfers", "Image claims held (transfers in progress).", held.claims),
            ("chunkrelay_event_subscribers", "Open job event streams.", lifecycle.feed.subscriberCount),
            ("chunkrelay_chunk_uploads", "Chunk uploads writing their bytes.", held.chunkWrites),
            ("chunkrelay_running_attempts", "Attempts running under a cancellation scope.", held.cancellationScopes),
            ("chunkrelay_ledger_job_rows", "Job rows in the ledger.", rows.jobs),
            ("chunkrelay_ledger_chunk_rows", "Chunk rows in the ledger.", rows.chunks),
            ("chunkrelay_unrecorded_outcomes", "Outcomes the ledger could not take yet (full disk, store refusing writes).", held.unrecorded),
        ] + lifecycle.storage.gauges
        for (name, value) in invoker.gauges().sorted(by: { $0.key < $1.key }) {
            gauges.append(("chunkrelay_runtime_\(name)", "The local runtime's \(name.replacingOccurrences(of: "_", with: " ")).", value))
        }
        for (name, help, value) in gauges {
            lines += ["# HELP \(name) \(help)", "# TYPE \(name) gauge", "\(name) \(value)"]
        }
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
            body: .init(byteBuffer: ByteBuffer(string: lines.joined(separator: "\n") + "\n"))
        )
    }
}
