import FaultInjection
import NIOCore

/// Whether the bytes written on a connection have reached the other side.
enum Delivery {
    /// The kernel's counters of a connection now; nil when it is closed (or not TCP on Linux).
    static func tcpInfo(_ channel: any Channel) async -> TCPInfo? {
        try? await TCPInfo.read(channel)?.get()
    }

    /// Waits until the client's TCP has acknowledged every byte of the body `meter` counts. False when
    /// the connection closes first or `timeout` passes (a client that stopped reading).
    ///
    /// Writing the last byte only hands it to the kernel, whose send buffer can hold megabytes: a
    /// one-shot key consumed then would be lost with a client that dies before reading them. The test
    /// is the count, not "nothing left to send": a reset empties the send queue, and bytes NIO or a
    /// fault's shaper still hold are not in it.
    /// A connection that has closed counts as delivered unless it was reset: a client that has read the
    /// whole response may close at once (curl, urllib), before the first look.
    static func waitUntilAcknowledged(
        _ channel: any Channel, connection: ConnectionState?, meter: BodyAcknowledgement?, timeout: Duration
    ) async -> Bool {
        func closedCleanly() -> Bool { !(connection?.wasReset ?? true) }
        #if os(Linux)
        guard channel is any SocketOptionProvider else { return channel.isActive }
        // No count (the kernel could not be read as the body began): nothing says the client has the bytes.
        guard let meter else { return channel.isActive ? false : closedCleanly() }
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            guard channel.isActive else { return closedCleanly() }
            await meter.sample()
            if meter.isComplete { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return false
        #else
        return channel.isActive
        #endif
    }
}
