import Foundation
import GRDB
import RelayProtocol

/// A job's row in the ledger.
struct JobRecord: Codable, FetchableRecord, PersistableRecord, Sendable, Equatable {
    static let databaseTableName = "job"

    var id: String
    var function: String
    /// The client's parameters as JSON text.
    var params: String
    /// Read back as an enum: a state or delivery this build does not know is an error, never a guess.
    var delivery: DeliveryMode
    var state: JobState
    /// FIFO key; jobs put back in the queue get a smaller one so they go first.
    var queueOrder: Int64
    var attempt: Int
    var uploadToken: String?
    var chunkSize: Int
    var imageKey: String?
    var totalChunks: Int?
    var totalBytes: Int64?
    var sha256: String?
    var contentType: String?
    var errorCode: String?
    var errorMessage: String?
    var createdAt: Double
    var readyAt: Double?
    var expiresAt: Double?
    var finishedAt: Double?
    /// Chunks the current attempt has written, and their bytes.
    var storedChunks = 0
    var storedBytes: Int64 = 0
    /// The image's bytes its transfers have delivered (`ByteCoverage.text`).
    var delivered = ""
    /// What instances sharing a PostgreSQL store record about the job; nil with one instance.
    var cluster: ClusterColumns? = nil

    private enum CodingKeys: String, CodingKey {
        case id, function, params, delivery, state, queueOrder, attempt, uploadToken, chunkSize, imageKey, totalChunks, totalBytes, sha256
        case contentType, errorCode, errorMessage, createdAt, readyAt, expiresAt, finishedAt, storedChunks, storedBytes, delivered
    }

    /// A new job, queued at `queueOrder`.
    init(id: String, function: String, params: String, delivery: DeliveryMode, chunkSize: Int, imageKey: String?, createdAt: Double, queueOrder: Int64 = 0) {
        self.id = id
        self.function = function
        self.params = params
        self.delivery = delivery
        self.state = JobStateMachine.created.state
        self.queueOrder = queueOrder
        self.attempt = 0
        self.chunkSize = chunkSize
        self.imageKey = imageKey
        self.createdAt = createdAt
    }

    var decodedParams: [String: JSONValue] {
        (try? JSONDecoder().decode([String: JSONValue].self, from: Data(params.utf8))) ?? [:]
    }

    /// The acknowledged bytes; a value the ledger should never hold counts as none (the key stays).
    var deliveredCoverage: ByteCoverage { ByteCoverage(text: delivered) ?? ByteCoverage() }
}

/// What only instances sharing a store record: who sends the image (until when), who runs the job
/// (until when, unless renewed), and when another instance last had a reader of its stream.
struct ClusterColumns: Sendable, Equatable {
    var claimOwner: String?
    var claimUntil: Double?
    var leaseOwner: String?
    var leaseUntil: Double?
    /// Read with the row in a transition, from `chunkrelay_presence` (other instances' marks only).
    var watchedAt: Double?
}

extension JobState: DatabaseValueConvertible {}
extension DeliveryMode: DatabaseValueConvertible {}

/// A chunk's row: its digest and size, per attempt. `written` is false from when the ledger gives
/// the index to a digest until that upload's bytes are where chunks are served from.
struct ChunkRecord: Codable, FetchableRecord, PersistableRecord, Sendable, Equatable {
    static let databaseTableName = "chunk"

    var jobId: String
    var attempt: Int
    var idx: Int
    var size: Int
    var sha256: String
    var written = true
}
