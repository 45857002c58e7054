import Foundation
import HTTPTypes
import HummingbirdCore
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import RelayProtocol
import Synchronization

/// Counts one server's open connections against its limit.
final class ConnectionLimiter: Sendable {
    let limit: Int
    private let open = Atomic<Int>(0)

    init(limit: Int) {
        self.limit = limit
    }

    func acquire() -> Bool {
        open.add(1, ordering: .relaxed).newValue <= limit
    }

    func release() {
        open.subtract(1, ordering: .relaxed)
    }

    /// Connections open now, those over the limit (being refused) included.
    var count: Int { open.load(ordering: .relaxed) }
}
