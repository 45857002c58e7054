import Foundation
import HTTPTypes
import Logging
import NIOCore
import NIOFileSystem
import Synchronization

/// Keeps a full disk (or a store that refuses writes) an answer rather than a wedge.
///
/// With the SQLite store, new jobs and uploads are refused while the state folder's free space is
/// under the low-water mark, and a reserve file keeps room for the writes that free space: when any
/// write hits `ENOSPC` the reserve is deleted at once, so the ledger can still record failures and
/// deletions. The janitor calls `refresh()` each pass: once space is back the reserve is made again and
/// work resumes. With PostgreSQL, a write the store refused marks it unavailable until a write succeeds.
final class StorageGuard: Sendable {
    /// Why the gateway is refusing new work now.
    enum Shortage: Equatable, Sendable {
        /// Free space in the state folder under the low-water mark.
        case lowSpace(free: Int64)
        /// A write hit a full disk; the reserve was released and is not made again yet.
        case diskFull
        /// The store refused a write or could not be reached.
        case storeUnavailable
    }

    private struct State {
        var reserveHeld = false
        var diskFull = false
        var storeUnavailable = false
        /// An upload of this many bytes was refused for want of room above the mark: storage is short
        /// until that much is free beside what uploads in flight take.
        var refusedBytes: Int64?
        /// What the log said last, so each change is said once.
        var reported: Shortage?
        /// By job, the attempt an upload of which was refused for space: its failure is `storage_full`.
        /// Kept until the job leaves that attempt (`forgetRefusal`), so a failure recorded late still says so.
        var refusedAttempts: [String: Int] = [:]
    }

    private let directory: String
    private let reservePath: String
    /// Refuse new jobs and uploads below this many free bytes (nil: the store is not on this disk).
    let minFreeSpace: Int64?
    /// Bytes kept in the reserve file.
    let reserveBytes: Int64
    private let state = Mutex(State())
    /// Bytes of chunk uploads admitted and not yet written.
    private let uploading = Atomic<Int64>(0)
    /// Set while the store is marked unavailable, so a healthy write path costs one atomic load.
    private let troubled = Atomic<Bool>(false)
    private let logger: Logger

    /// `minFreeSpace` nil: no disk checks (PostgreSQL keeps the bytes); only the store's refusals count.
    init(stateDirectory: URL, minFreeSpace: Int64?, reserveBytes: Int64, logger: Logger) {
        directory = stateDirectory.path
        reservePath = stateDirectory.appendingPathComponent("reserve.space").path
        self.minFreeSpace = minFreeSpace
        self.reserveBytes = minFreeSpace == nil ? 0 : reserveBytes
        self.logger = logger
    }

    /// Free bytes of the state folder's file system for an unprivileged writer.
    var freeBytes: Int64? {
        var info = statvfs()
        guard statvfs(directory, &info) == 0 else { return nil }
        return Int64(info.f_bavail) * Int64(info.f_frsize)
    }

    /// What is short now, if anything (the low-water mark measured now).
    var shortage: Shortage? {
        let flags = state.withLock { ($0.diskFull, $0.storeUnavailable, $0.refusedBytes) }
        if flags.1 { return .storeUnavailable }
        if flags.0 { return .diskFull }
        guard let minFreeSpace, let free = freeBytes else { return nil }
        if free < minFreeSpace || flags.2 != nil { return .lowSpace(free: free) }
        return nil
    }

    /// Refuses new work that would write `bytes` while storage is short: `507` with `Retry-After`
    /// (`503 store_unavailable` when the store refuses writes).
    func admit(_ what: String, bytes: Int64 = 0) throws(GatewayError) {
        if let shortage = shortage ?? lowSpace(after: bytes) {
            report(shortage)
            throw refusal(shortage, what)
        }
    }

    /// Runs an upload of attempt `attempt` of `jobId` that may write `bytes`, or refuses it like `admit`
    /// (remembering it: if the attempt then fails, it failed for lack of space). The bytes count as
    /// taken while `body` runs, so uploads arriving together do not all pass the mark on the same free space.
    func withUploadRoom<T>(jobId: String, attempt: Int, bytes: Int64, _ body: () async throws -> T) async throws -> T {
        let pending = uploading.add(bytes, ordering: .relaxed).newValue
        defer { uploading.subtract(bytes, ordering: .relaxed) }
        do {
            try admit("chunk upload", bytes: pending)
        } catch {
            // Only a lack of space is the attempt's cause of failure; a store refusing writes is not.
            if error.code == .insufficientStorage { markRefused(jobId: jobId, attempt: attempt) }
            throw error
        }
        return try await body()
    }

    /// Whether an upload of that attempt was refused for space.
    func wasRefused(jobId: String, attempt: Int) -> Bool {
        state.withLock { $0.refusedAttempts[jobId] == attempt }
    }

    /// The job left the attempt a refusal was remembered for (it ended, or another attempt began).
    func forgetRefusal(jobId: String) {
        _ = state.withLock { $0.refusedAttempts.removeValue(forKey: jobId) }
    }

    private func markRefused(jobId: String, attempt: Int) {
        state.withLock { $0.refusedAttempts[jobId] = attempt }
    }

    private func lowSpace(after bytes: Int64) -> Shortage? {
        // A mark of 0 is none: the disk is met full at the write itself.
        guard let minFreeSpace, minFreeSpace > 0, bytes > 0, let free = freeBytes, free - bytes < minFreeSpace else { return nil }
        state.withLock { $0.refusedBytes = max($0.refusedBytes ?? 0, bytes) }
        return .lowSpace(free: free)
    }

    /// The answer for work refused because of `shortage`.
    func refusal(_ shortage: Shortage, _ what: String) -> GatewayError {
        switch shortage {
        case .storeUnavailable:
            return GatewayError(.serviceUnavailable, .storeUnavailable, "\(what) refused: the store refuses writes now", headers: [.retryAfter: "2"])
        case .diskFull, .lowSpace:
            return GatewayError(.insufficientStorage, .insufficientStorage, "\(what) refused: \(describe(shortage))", headers: [.retryAfter: "2"])
        }
    }

    /// A write failed: a full disk releases the reserve (so the writes that free space can commit), a
    /// store that refuses writes is marked; other errors are not the guard's. A chunk write of attempt
    /// `attempt` of `jobId` that hit a full disk makes that attempt's failure `storage_full`.
    func noticed(_ error: any Error, jobId: String? = nil, attempt: Int? = nil) {
        guard let failure = StorageFailure(error) else { return }
        if failure == .full, minFreeSpace != nil, let jobId, let attempt { markRefused(jobId: jobId, attempt: attempt) }
        let releaseReserve = state.withLock { state -> Bool in
            switch failure {
            case .full where minFreeSpace != nil:
                state.diskFull = true
                defer { state.reserveHeld = false }
                return state.reserveHeld
            case .full, .unavailable:
                state.storeUnavailable = true
                troubled.store(true, ordering: .relaxed)
                return false
            }
        }
        if releaseReserve { try? FileManager.default.removeItem(atPath: reservePath) }
        report(shortage ?? .diskFull)
    }

    /// A write succeeded: a store marked unavailable accepts writes again.
    func wrote() {
        guard troubled.load(ordering: .relaxed) else { return }
        let recovered = state.withLock { state -> Bool in
            defer { state.storeUnavailable = false }
            troubled.store(false, ordering: .relaxed)
            return state.storeUnavailable
        }
        if recovered { report(shortage) }
    }

    /// The janitor's look, each pass (and once at start): makes the reserve when there is room for it
    /// above the low-water mark, which ends a disk-full spell; says once when storage is back.
    func refresh() async {
        guard let minFreeSpace, let free = freeBytes else { return report(shortage) }
        let inFlight = uploading.load(ordering: .relaxed)
        let held = state.withLock { state -> Bool in
            if let refused = state.refusedBytes, free - inFlight - refused >= minFreeSpace { state.refusedBytes = nil }
            return state.reserveHeld
        }
        // Room for the reserve and, beside it, the mark and as much again: the space the reserve itself
        // gave back when released must not count as recovered.
        if !held, free >= minFreeSpace + 2 * reserveBytes {
            if await makeReserve() {
                state.withLock { state in
                    state.reserveHeld = true
                    state.diskFull = false
                }
            }
        }
        report(shortage)
    }

    /// Says once that storage is short, or back.
    private func report(_ shortage: Shortage?) {
        let changed = state.withLock { state -> Bool in
            // Low space measured again with other numbers is the same spell.
            let same: Bool
            switch (state.reported, shortage) {
            case (.lowSpace, .lowSpace): same = true
            default: same = state.reported == shortage
            }
            state.reported = shortage
            return !same
        }
        guard changed else { return }
        if let shortage {
            logger.warning("storage short: \(describe(shortage)); refusing new jobs and uploads until it is not")
        } else {
            if minFreeSpace == nil {
                logger.notice("the store takes writes again; taking new work")
            } else {
                logger.notice("storage available again: \(freeBytes.map(Self.mebibytes) ?? "?") free in \(directory); taking new work")
            }
        }
    }

    /// What `shortage` is, in words.
    func describe(_ shortage: Shortage) -> String {
        switch shortage {
        case .lowSpace(let free):
            "\(Self.mebibytes(free)) free in the state folder \(directory), under the \(Self.mebibytes(minFreeSpace ?? 0)) kept free (--min-free-space)"
        case .diskFull:
            "the state folder's disk \(directory) is full"
        case .storeUnavailable:
            "the store refuses writes"
        }
    }

    private static func mebibytes(_ bytes: Int64) -> String {
        String(format: "%.1f MiB", Double(bytes) / 1_048_576)
    }

    /// Writes the reserve file in full (a sparse file would reserve nothing).
    private func makeReserve() async -> Bool {
        let zeros = ByteBuffer(repeating: 0, count: 1 << 20)
        do {
            try await FileSystem.shared.withFileHandle(
                forWritingAt: FilePath(reservePath), options: .newFile(replaceExisting: true, permissions: .ownerReadWrite)
            ) { handle in
                var offset: Int64 = 0
                while offset < reserveBytes {
                    var slice = zeros
                    slice.moveWriterIndex(to: Int(min(Int64(zeros.readableBytes), reserveBytes - offset)))
                    try await handle.write(contentsOf: slice, toAbsoluteOffset: offset)
                    offset += Int64(slice.readableBytes)
                }
                try await handle.synchronize()
            }
            return true
        } catch {
            try? FileManager.default.removeItem(atPath: reservePath)
            return false
        }
    }

    /// The gauges of `/metrics`.
    var gauges: [(String, String, Int)] {
        let (held, shortNow) = (state.withLock { $0.reserveHeld }, shortage != nil)
        var gauges: [(String, String, Int)] = [("chunkrelay_storage_short", "1 while new jobs and uploads are refused for storage (see /healthz).", shortNow ? 1 : 0)]
        if minFreeSpace != nil {
            gauges += [
                ("chunkrelay_state_free_bytes", "Free bytes in the state folder's file system.", Int(freeBytes ?? -1)),
                ("chunkrelay_state_min_free_bytes", "The low-water mark (--min-free-space).", Int(minFreeSpace ?? 0)),
                ("chunkrelay_storage_reserve_bytes", "Bytes held in reserve for the writes that free space (0 after a full disk).", held ? Int(reserveBytes) : 0),
            ]
        }
        return gauges
    }
}
