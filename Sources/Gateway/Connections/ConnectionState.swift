import Foundation
import HTTPTypes
import HummingbirdCore
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import RelayProtocol
import Synchronization

/// How a connection ended, as far as request handlers need to know.
final class ConnectionState: Sendable {
    /// Whether a fault shaper sits on the connection (`serve --faults`), which may hold bytes above the kernel.
    let shapesFaults: Bool

    init(shapesFaults: Bool = false) {
        self.shapesFaults = shapesFaults
    }

    private let reset = Atomic<Bool>(false)
    private let acknowledged = Atomic<UInt64>(0)

    /// Whether the peer reset the connection (a client that closes with unread data in its buffer
    /// resets; one that read everything and closes sends a FIN) or a response write failed.
    var wasReset: Bool { reset.load(ordering: .relaxed) }

    func markReset() { reset.store(true, ordering: .relaxed) }

    /// The bytes the peer's TCP had acknowledged when its reset arrived (0: not known).
    var acknowledgedAtReset: UInt64 { acknowledged.load(ordering: .relaxed) }

    /// Records what the kernel says was acknowledged, read as the reset arrived.
    func recordAcknowledgedAtReset(_ bytes: UInt64) { _ = acknowledged.max(bytes, ordering: .relaxed) }

    /// The state kept by the guard on `channel`, if it has one.
    static func of(_ channel: any Channel) async -> ConnectionState? {
        try? await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.handler(type: ConnectionGuard.self).state
        }.get()
    }
}
