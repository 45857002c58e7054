import Foundation
import RelayProtocol

extension Gateway {
    /// What the inspector's page redraws on: grows with every move of any job.
    public var activityVersion: Int { lifecycle.activity.version }

    /// The most recent jobs, newest first, queued ones with their place.
    public func inspectedJobs(limit: Int = 200) async throws -> [InspectedJob] {
        let all = try await lifecycle.store.jobs([JobFilter(states: Set(JobState.allCases))])
        let positions = Dictionary(
            uniqueKeysWithValues: all.filter { $0.state == .queued }.sorted { $0.queueOrder < $1.queueOrder }.enumerated().map { ($1.id, $0 + 1) })
        return all.sorted { $0.createdAt > $1.createdAt }.prefix(limit).map { Self.inspected($0, position: positions[$0.id]) }
    }

    /// One job in full; nil when the ledger has no such job.
    public func inspectedJob(id: String) async throws -> InspectedJobDetail? {
        guard RandomToken.isWellFormed(id), let job = try await lifecycle.store.job(id: id) else { return nil }
        let position = job.state == .queued ? try await lifecycle.store.queuedPosition(of: id) : nil
        return InspectedJobDetail(job: Self.inspected(job, position: position), params: job.decodedParams, timeline: lifecycle.activity.entries(of: id))
    }

    /// A new job with the same function, params and delivery as `id` (a replay), queued as any other.
    public func replayJob(id: String) async throws -> JobCreated {
        guard RandomToken.isWellFormed(id), let job = try await lifecycle.store.job(id: id) else {
            throw GatewayError(.notFound, .jobNotFound, "no job \(id)")
        }
        return try await createJob(CreateJobRequest(function: job.function, params: job.decodedParams, delivery: job.delivery))
    }

    static func inspected(_ job: JobRecord, position: Int?) -> InspectedJob {
        InspectedJob(
            id: job.id, function: job.function, delivery: job.delivery.rawValue, state: job.state.rawValue, attempt: job.attempt, position: position,
            createdAt: job.createdAt, readyAt: job.readyAt, finishedAt: job.finishedAt, chunks: job.totalChunks ?? job.storedChunks,
            bytes: job.totalBytes ?? job.storedBytes, sha256: job.sha256,
            error: job.errorCode.map { JobError(code: $0, message: job.errorMessage ?? "") },
            image: job.imageKey.map { "/v1/images/\(RandomToken.shortened($0))" }, delivered: job.deliveredCoverage.count)
    }
}
