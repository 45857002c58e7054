import Foundation
import GRDB
import NIOFileSystem
import PostgresNIO

/// A failure of the place jobs are kept that is the machine's condition, not the request's fault or a
/// bug: the state folder's disk is full, or the PostgreSQL store refuses writes or cannot be reached.
/// The one place that tells these from other errors, for the HTTP answer (507 / 503, never 500) and
/// for `StorageGuard`, which releases its reserve when the disk fills.
enum StorageFailure: Equatable, Sendable {
    /// `ENOSPC`/`EDQUOT` from a file write, `SQLITE_FULL` from the ledger, or PostgreSQL's
    /// `disk_full` (53100): nothing more can be written until space is freed.
    case full
    /// The store refuses writes (read-only, shutting down, out of connections or memory) or cannot be
    /// reached; it may accept them again by itself.
    case unavailable

    init?(_ error: any Error) {
        if let transaction = error as? PostgresTransactionError {
            // The statement's refusal is inside; a failed `BEGIN` or `COMMIT` is the store's too.
            guard let inner = transaction.closureError ?? transaction.beginError ?? transaction.commitError, let failure = StorageFailure(inner) else {
                return nil
            }
            self = failure
            return
        }
        if let error = error as? DatabaseError {
            guard error.resultCode == .SQLITE_FULL || error.extendedResultCode == .SQLITE_IOERR_WRITE && Self.diskIsFull(error) else { return nil }
            self = .full
            return
        }
        if let error = error as? PSQLError {
            guard let failure = Self.classify(error) else { return nil }
            self = failure
            return
        }
        if let error = error as? FileSystemError {
            guard let errno = Self.errno(of: error), errno == ENOSPC || errno == EDQUOT else { return nil }
            self = .full
            return
        }
        return nil
    }

    /// Whether `error` is the task's cancellation (shutting down, most often), bare or as the PostgreSQL
    /// store wraps it: not a failure of the store, and not worth an error in the log.
    static func isCancellation(_ error: any Error) -> Bool {
        if error is CancellationError { return true }
        guard let transaction = error as? PostgresTransactionError else { return false }
        return [transaction.closureError, transaction.beginError, transaction.commitError].contains { $0 is CancellationError }
    }

    /// The errno under a file-system error (its `cause` chain ends in the system call's).
    private static func errno(of error: FileSystemError) -> Int32? {
        var cause: (any Error)? = error.cause
        while let current = cause {
            if let call = current as? FileSystemError.SystemCallError { return call.errno.rawValue }
            cause = (current as? FileSystemError)?.cause
        }
        return nil
    }

    /// SQLite reports a write that hit `ENOSPC` as an I/O error at times (WAL append); its message says so.
    private static func diskIsFull(_ error: DatabaseError) -> Bool {
        (error.message ?? "").contains("disk") || (error.message ?? "").contains("full")
    }

    private static func classify(_ error: PSQLError) -> StorageFailure? {
        switch error.code {
        case .server:
            guard let state = error.serverInfo?[.sqlState] else { return nil }
            if state == "53100" { return .full }
            // 53: insufficient resources; 57P01–03: shutting down, crashed, not accepting connections yet;
            // 25006: read-only transaction (a standby, or `default_transaction_read_only`); 08: connection.
            if state.hasPrefix("53") || state.hasPrefix("57P") || state == "25006" || state.hasPrefix("08") { return .unavailable }
            return nil
        case .connectionError, .serverClosedConnection, .uncleanShutdown, .poolClosed, .clientClosedConnection:
            return .unavailable
        default:
            return nil
        }
    }
}
