import NIOCore

/// Whether the bytes written on a connection have reached the other side.
enum Delivery {
    /// Linux's `struct tcp_info` as the kernel fills it (Glibc's declaration stops before the fields
    /// needed here): `tcpi_unacked` at byte 24, `tcpi_bytes_acked` at 120, `tcpi_notsent_bytes` at 144
    /// (kernel 4.6+), `tcpi_bytes_sent` and `tcpi_bytes_retrans` at 200 and 208 (4.19+).
    struct TCPInfo: Sendable {
        var words = InlineArray<64, UInt32>(repeating: 0)
        var unackedSegments: UInt32 { words[6] }
        var unsentBytes: UInt32 { words[36] }
        var bytesAcked: UInt64 { quad(30) }
        /// Every byte the connection has handed to the kernel: sent once, or still waiting to be sent.
        var bytesQueued: UInt64 { quad(50) &- quad(52) &+ UInt64(unsentBytes) }

        private func quad(_ word: Int) -> UInt64 { UInt64(words[word]) | UInt64(words[word + 1]) << 32 }
    }

    /// The kernel's counters of a connection now; nil when it is closed (or not TCP on Linux).
    static func tcpInfo(_ channel: any Channel) async -> TCPInfo? {
        try? await readTCPInfo(channel)?.get()
    }

    /// The read behind `tcpInfo`, as a future: on the channel's event loop it completes at once, so a
    /// handler can take it before the socket closes. Nil where there is nothing to read.
    static func readTCPInfo(_ channel: any Channel) -> EventLoopFuture<TCPInfo>? {
        #if os(Linux)
        guard let provider = channel as? any SocketOptionProvider else { return nil }
        return provider.unsafeGetSocketOption(
            level: SocketOptionLevel(NIOBSDSocket.OptionLevel.tcp.rawValue), name: SocketOptionName(NIOBSDSocket.Option.tcp_info.rawValue))
        #else
        return nil
        #endif
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
        guard channel is any SocketOptionProvider else { return channel.isActive }
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            guard channel.isActive else { return closedCleanly() }
            guard let info = await tcpInfo(channel) else { return channel.isActive ? false : closedCleanly() }
            if info.unackedSegments == 0, info.unsentBytes == 0 { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return false
        #else
        return channel.isActive
        #endif
    }
}
