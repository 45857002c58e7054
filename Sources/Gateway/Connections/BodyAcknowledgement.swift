import AsyncAlgorithms
import NIOCore
import Synchronization

/// How much of one response body the client's TCP has acknowledged, read from the kernel's counters,
/// so that a transfer that breaks credits its key with the bytes its client is known to have, and no more.
///
/// The baseline is what the connection had handed the kernel before the body (the head included,
/// flushed first); from then on, acknowledged bytes past the baseline are body bytes. Samples are
/// taken while the transfer runs, and the connection's guard takes one as a reset arrives, before the
/// socket closes; after a break the last one stands (a lower bound, the safe side).
final class BodyAcknowledgement: Sendable {
    private let channel: any Channel
    private let connection: ConnectionState?
    private let baseline: UInt64
    private let length: Int64
    private let acknowledgedBytes = Atomic<Int64>(0)

    private init(channel: any Channel, connection: ConnectionState?, baseline: UInt64, length: Int64) {
        self.channel = channel
        self.connection = connection
        self.baseline = baseline
        self.length = length
    }

    /// Starts counting the body of `length` bytes about to be written on `channel`; nil where the
    /// kernel cannot say (then a broken transfer credits nothing).
    static func start(on channel: any Channel, connection: ConnectionState?, length: Int64) async -> BodyAcknowledgement? {
        // Everything written before (the head among it) must be in the kernel first: an empty body part
        // completes only after them.
        guard (try? await FileTransfer.writeBody(.byteBuffer(ByteBuffer()), on: channel)) != nil, let info = await Delivery.tcpInfo(channel) else { return nil }
        return BodyAcknowledgement(channel: channel, connection: connection, baseline: info.bytesQueued, length: length)
    }

    /// The body bytes acknowledged as of the last sample.
    var acknowledged: Int64 { acknowledgedBytes.load(ordering: .relaxed) }

    /// Whether the client's TCP has acknowledged the whole body, as of the last sample.
    var isComplete: Bool { acknowledged >= length }

    /// The part of `range` (the body's place in the image) acknowledged as of the last sample.
    func acknowledgedPart(of range: Range<Int64>) -> Range<Int64> {
        range.lowerBound..<range.lowerBound + acknowledged
    }

    /// Reads the counters again (nothing once the connection is closed).
    func sample() async {
        let acked = await Delivery.tcpInfo(channel)?.bytesAcked ?? 0
        record(max(acked, connection?.acknowledgedAtReset ?? 0))
    }

    private func record(_ acked: UInt64) {
        guard acked > baseline else { return }
        _ = acknowledgedBytes.max(min(Int64(acked - baseline), length), ordering: .relaxed)
    }

    /// Samples every `interval` until the calling task is cancelled.
    func watch(every interval: Duration) async {
        for await _ in AsyncTimerSequence(interval: interval, clock: .continuous) {
            await sample()
        }
    }
}
