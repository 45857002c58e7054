import FaultInjection
import NIOCore

/// Whether the bytes written on a connection have reached the other side.
enum Delivery {
    /// The kernel's counters of a connection now; nil when it is closed (or not TCP on Linux).
    static func tcpInfo(_ channel: any Channel) async -> TCPInfo? {
        try? await TCPInfo.read(channel)?.get()
    }

    /// Waits until nothing written on `channel` is unsent or unacknowledged: the client's TCP holds every
    /// byte. False when the connection closes first or `timeout` passes (a client that stopped reading).
    ///
    /// Writing the last byte only hands it to the kernel, whose send buffer can hold megabytes: a
    /// one-shot key consumed then would be lost with a client that dies before reading them.
    /// A connection that has closed counts as delivered unless it was reset: a client that has read the
    /// whole response may close at once (curl, urllib), before the first look.
    ///
    /// With `meter`, the test is its count: every body byte acknowledged, which nothing else can pass
    /// for (a reset empties the send queue, and bytes NIO or a fault's shaper still hold are not in it).
    static func waitUntilAcknowledged(
        _ channel: any Channel, connection: ConnectionState?, meter: BodyAcknowledgement?, timeout: Duration
    ) async -> Bool {
        func closedCleanly() -> Bool { !(connection?.wasReset ?? true) }
        #if os(Linux)
        guard channel is any SocketOptionProvider else { return channel.isActive }
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            guard channel.isActive else { return closedCleanly() }
            if let meter {
                await meter.sample()
                if meter.isComplete { return true }
                try? await Task.sleep(for: .milliseconds(5))
                continue
            }
            // Bytes a fault's shaper still holds are not in the kernel yet: not delivered either. Asked
            // before the kernel, so that bytes it lets go between the two looks are seen unacknowledged.
            if connection?.shapesFaults == true {
                guard let holding = await FaultShaper.isHolding(on: channel) else { return closedCleanly() }
                if holding {
                    try? await Task.sleep(for: .milliseconds(5))
                    continue
                }
            }
            guard let info = await tcpInfo(channel) else { return channel.isActive ? false : closedCleanly() }
            // Gone while our side is open: reset (its counters show nothing unacknowledged, whatever
            // arrived), before the server may have heard of it.
            if info.isClosed { return false }
            if info.allAcknowledged { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return false
        #else
        return channel.isActive
        #endif
    }
}
