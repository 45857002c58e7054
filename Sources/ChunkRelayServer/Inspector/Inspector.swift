import FaultInjection
import Foundation
import Gateway
import LocalRuntime
import NIOCore
import RelayProtocol

/// The inspector's reads and its replay, over the gateway, the runtime and the fault injector of one
/// `serve`: what `/inspect` and `chunkrelay replay` use. It decides nothing about jobs: a replay is a
/// new job (or invocation) made the way any client's is.
public struct Inspector: Sendable {
    let gateway: Gateway
    let runtime: LocalRuntime
    let faults: FaultInjector?

    /// What moves when anything the page shows changes.
    public var version: Int {
        gateway.activityVersion + runtime.invocations.version + (faults?.count ?? 0)
    }

    /// Everything the page lists.
    public func snapshot() async throws -> InspectorSnapshot {
        let version = self.version
        var functions: [InspectorSnapshot.Function] = []
        for function in runtime.registry.functions.values.sorted(by: { $0.name < $1.name }) {
            let environments = await runtime.environments(of: function.name)
            functions.append(InspectorSnapshot.Function(
                name: function.name, runtime: function.runtime, handler: function.handler, timeout: function.timeout, memorySize: function.memorySize,
                reservedConcurrency: function.reservedConcurrency, maximumRetryAttempts: function.maximumRetryAttempts,
                environment: function.environment.keys.sorted(), url: runtime.functionURL(of: function.name), invokeMode: function.url?.invokeMode.rawValue,
                live: environments.live, warm: environments.warm))
        }
        let jobs = try await gateway.inspectedJobs()
        return InspectorSnapshot(
            version: version, faultsOn: faults != nil, functions: functions,
            queue: jobs.filter { $0.position != nil }.sorted { ($0.position ?? 0) < ($1.position ?? 0) }, jobs: jobs,
            invocations: runtime.invocations.recent(), faults: (faults?.recent() ?? []).reversed())
    }

    /// One job in full.
    public func job(id: String) async throws -> InspectedJobDetail {
        guard let detail = try await gateway.inspectedJob(id: id) else { throw GatewayError(.notFound, .jobNotFound, "no job \(id)") }
        return detail
    }

    /// One invocation in full: attempt `attempt` of the request id (the retries of an `Event` share it), or its latest.
    public func invocation(requestId: String, attempt: Int? = nil) throws -> InvocationLog.Record {
        guard let record = runtime.invocations.record(requestId: requestId, attempt: attempt) else {
            let which = attempt.map { " attempt \($0)" } ?? ""
            throw GatewayError(.notFound, .invocationNotFound, "no invocation \(requestId)\(which) in the inspector's memory")
        }
        return record
    }

    /// Replays a job (a job id) or an invocation (a request id): a job again is a new job with the same
    /// function, params and delivery; an invocation that worked for a job replays that job (its upload
    /// token is spent); any other invocation is sent again as an asynchronous (`Event`) invocation.
    public func replay(_ id: String) async throws -> InspectorReplay {
        if RandomToken.isWellFormed(id) {
            return InspectorReplay(kind: "job", job: try await gateway.replayJob(id: id))
        }
        guard let invocation = runtime.invocations.replayable(requestId: id) else {
            throw GatewayError(.notFound, .invocationNotFound, "no job or invocation \(id) to replay")
        }
        if let jobId = invocation.jobId {
            return InspectorReplay(kind: "job", job: try await gateway.replayJob(id: jobId))
        }
        let requestId: String
        do {
            requestId = try runtime.invokeAsync(invocation.function, payload: invocation.payload)
        } catch {
            throw GatewayError(error.status, .invalidRequest, "\(invocation.function) could not be invoked again: \(error.message)")
        }
        return InspectorReplay(kind: "invocation", function: invocation.function, requestId: requestId)
    }
}
