import ServiceLifecycle

/// What gateway instances sharing a PostgreSQL store coordinate beyond the ledger: leases on running
/// jobs, the renewal of transfer claims, readers' presence, and wake-ups. One instance has none of it.
///
/// Claims and leases are columns of the job's row (`ClusterColumns`), taken and checked inside the
/// ledger's transitions; what is here runs outside them and decides nothing.
protocol ClusterCoordination: Sendable {
    /// This instance, as it signs leases and claims.
    var instance: String { get }
    /// How long a lease or a renewal lasts without another.
    var leaseSeconds: Double { get }
    /// Extends the leases of the jobs this instance runs.
    func renewLeases(now: Double) async throws
    /// Running jobs whose lease ran out by `now` (their instance stopped renewing).
    func lapsedLeases(now: Double) async throws -> [String]
    /// Extends this instance's claim on a job's transfer.
    func renewTransfer(jobId: String, until: Double) async throws
    /// Records that this instance has clients reading these jobs' streams now.
    func markWatched(_ jobIds: [String], at time: Double) async throws
}
