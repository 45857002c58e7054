import NIOCore

/// Linux's `struct tcp_info` as the kernel fills it (Glibc's declaration stops before the fields
/// needed here): `tcpi_state` at byte 0, `tcpi_unacked` at 24, `tcpi_bytes_acked` at 120,
/// `tcpi_notsent_bytes` at 144 (kernel 4.6+), `tcpi_bytes_sent` and `tcpi_bytes_retrans` at 200 and
/// 208 (4.19+). What a one-shot download and a fault's break both wait on: bytes the client's TCP holds.
public struct TCPInfo: Sendable {
    var words = InlineArray<64, UInt32>(repeating: 0)
    /// Segments sent and not acknowledged yet.
    public var unackedSegments: UInt32 { words[6] }
    /// Bytes handed to the kernel and not sent yet.
    public var unsentBytes: UInt32 { words[36] }
    /// Bytes the peer acknowledged.
    public var bytesAcked: UInt64 { quad(30) }
    /// Every byte the connection has handed to the kernel: sent once, or still waiting to be sent.
    public var bytesQueued: UInt64 { quad(50) &- quad(52) &+ UInt64(unsentBytes) }
    /// Whether the peer has closed its side (`TCP_CLOSE_WAIT`) or the connection is gone.
    public var peerClosed: Bool {
        let state = words[0] & 0xff
        return state == 8 || state == 7 || state == 0
    }
    /// Whether everything written is in the peer's TCP.
    public var allAcknowledged: Bool { unackedSegments == 0 && unsentBytes == 0 }

    private func quad(_ word: Int) -> UInt64 { UInt64(words[word]) | UInt64(words[word + 1]) << 32 }

    /// The counters of `channel` now, as a future: on the channel's event loop it completes at once, so
    /// a handler can take it before the socket closes. Nil where there is nothing to read (not TCP on Linux).
    public static func read(_ channel: any Channel) -> EventLoopFuture<TCPInfo>? {
        #if os(Linux)
        guard let provider = channel as? any SocketOptionProvider else { return nil }
        return provider.unsafeGetSocketOption(
            level: SocketOptionLevel(NIOBSDSocket.OptionLevel.tcp.rawValue), name: SocketOptionName(NIOBSDSocket.Option.tcp_info.rawValue))
        #else
        return nil
        #endif
    }
}
