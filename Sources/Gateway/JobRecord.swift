import Foundation
import GRDB
import RelayProtocol

/// A job's row in the ledger.
struct JobRecord: Codable, FetchableRecord, PersistableRecord, Sendable {
    static let databaseTableName = "job"

    var id: String
    var function: String
    /// The client's parameters as JSON text.
    var params: String
    var delivery: String
    var state: String
    /// FIFO key; recovered running jobs get a smaller one so they go first.
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
    /// Chunks the current attempt has stored, and their bytes.
    var storedChunks = 0
    var storedBytes: Int64 = 0

    var jobState: JobState { JobState(rawValue: state) ?? .failed }
    var deliveryMode: DeliveryMode { DeliveryMode(rawValue: delivery) ?? .retrieve }

    var decodedParams: [String: JSONValue] {
        (try? JSONDecoder().decode([String: JSONValue].self, from: Data(params.utf8))) ?? [:]
    }
}

/// A chunk's row: its digest and size, per attempt.
struct ChunkRecord: Codable, FetchableRecord, PersistableRecord, Sendable {
    static let databaseTableName = "chunk"

    var jobId: String
    var attempt: Int
    var idx: Int
    var size: Int
    var sha256: String
}
