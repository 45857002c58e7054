import Hummingbird
import NIOCore

/// The gateway's request context: Hummingbird's basic one plus the connection, so a one-shot
/// download can learn when the client's TCP has acknowledged its last byte.
public struct GatewayRequestContext: RequestContext {
    /// Hummingbird's per-request storage.
    public var coreContext: CoreRequestContextStorage
    let channel: any Channel

    /// Made by the server for each request.
    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }
}

/// Whether the bytes written on a connection have reached the other side.
enum Delivery {
    /// Linux's `struct tcp_info` as the kernel fills it (Glibc's declaration stops before the fields
    /// needed here): `tcpi_unacked` at byte 24, `tcpi_notsent_bytes` at byte 144 (kernel 4.6+).
    struct TCPInfo: Sendable {
        var words = InlineArray<48, UInt32>(repeating: 0)
        var unackedSegments: UInt32 { words[6] }
        var unsentBytes: UInt32 { words[36] }
    }

    /// Waits until nothing written on `channel` is unsent or unacknowledged: the client's TCP holds every
    /// byte. False when the connection closes first or `timeout` passes (a client that stopped reading).
    ///
    /// Writing the last byte only hands it to the kernel, whose send buffer can hold megabytes: a
    /// one-shot key consumed then would be lost with a client that dies before reading them.
    /// A connection that has closed counts as delivered unless it was reset: a client that has read the
    /// whole response may close at once (curl, urllib), before the first look.
    static func waitUntilAcknowledged(_ channel: any Channel, connection: ConnectionState?, timeout: Duration) async -> Bool {
        func closedCleanly() -> Bool { !(connection?.wasReset ?? true) }
        #if os(Linux)
        guard let provider = channel as? any SocketOptionProvider else { return channel.isActive }
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            guard channel.isActive else { return closedCleanly() }
            guard
                let info: TCPInfo = try? await provider.unsafeGetSocketOption(
                    level: SocketOptionLevel(NIOBSDSocket.OptionLevel.tcp.rawValue),
                    name: SocketOptionName(NIOBSDSocket.Option.tcp_info.rawValue)
                ).get()
            else { return channel.isActive ? false : closedCleanly() }
            if info.unackedSegments == 0, info.unsentBytes == 0 { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return false
        #else
        return channel.isActive
        #endif
    }
}
