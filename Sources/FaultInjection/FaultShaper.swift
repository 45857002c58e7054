#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1

/// Carries out the body part of a fault on one connection: the bandwidth cap, the stall, the break.
///
/// It sits below the HTTP/1 codec, where every response body passes as bytes or as a file region
/// (the gateway's `sendfile` downloads included), and holds back what the fault does not let through
/// yet. A response is shaped only when its request armed the shaper; others pass untouched.
///
/// A break waits until the bytes before it are in the client's TCP, tells the server what was
/// acknowledged (`onBreak`), and only then fails the writes it held: so a one-shot key is credited with
/// exactly what the client can have, never less.
public final class FaultShaper: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = NIOAny
    public typealias OutboundIn = HTTPServerResponsePart
    public typealias OutboundOut = HTTPServerResponsePart

    private struct Held {
        var part: HTTPServerResponsePart
        var promise: EventLoopPromise<Void>?
        /// For a head: the fault of its response.
        var fault: Fault?
    }

    private let onBreak: @Sendable (_ acknowledged: UInt64) -> Void
    private var armed: Fault?
    /// The fault of the response whose parts are arriving.
    private var incoming: Fault?
    /// The fault of the response being sent.
    private var active: Fault?
    private var held = CircularBuffer<Held>()
    private var sent: Int64 = 0
    private var stalled = false
    private var tokens: Double = 0
    private var refilled = NIODeadline.now()
    private var timer: Scheduled<Void>?
    private var broken = false
    /// Closed by a break or a stall's watch: later writes fail at once.
    private var closed = false

    /// A shaper whose breaks report the acknowledged bytes through `onBreak`.
    public init(onBreak: @escaping @Sendable (_ acknowledged: UInt64) -> Void = { _ in }) {
        self.onBreak = onBreak
    }

    /// Puts a shaper below the HTTP/1 codec of `pipeline` (from a handler added after it).
    public static func install(in pipeline: ChannelPipeline.SynchronousOperations, onBreak: @escaping @Sendable (UInt64) -> Void) throws {
        let codec = try pipeline.handler(type: HTTP1ToHTTPServerCodec.self)
        try pipeline.addHandler(FaultShaper(onBreak: onBreak), position: .before(codec))
    }

    /// Shapes the next response on `channel` by `fault`; nothing when the channel has no shaper.
    static func arm(_ fault: Fault, on channel: any Channel) async {
        try? await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.handler(type: FaultShaper.self).armed = fault
        }.get()
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard !closed else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        let part = unwrapOutboundIn(data)
        var fault: Fault?
        if case .head = part {
            incoming = armed
            armed = nil
            fault = incoming
        }
        let shaped = incoming != nil
        if case .end = part { incoming = nil }
        guard shaped || !held.isEmpty || broken else {
            context.write(data, promise: promise)
            return
        }
        held.append(Held(part: part, promise: promise, fault: fault))
        pump(context)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        closed = true
        failHeld()
        context.fireChannelInactive()
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        failHeld()
    }

    private func failHeld() {
        timer?.cancel()
        timer = nil
        while let next = held.popFirst() { next.promise?.fail(ChannelError.ioOnClosedChannel) }
    }

    /// Sends what the active fault lets through now; schedules itself for the rest.
    private func pump(_ context: ChannelHandlerContext) {
        guard timer == nil, !broken else { return }
        var wrote = false
        defer { if wrote { context.flush() } }
        while var next = held.first {
            switch next.part {
            case .head:
                active = next.fault
                sent = 0
                stalled = false
                tokens = Double(Self.burst(active?.bandwidth ?? 0))
                refilled = .now()
            case .end:
                active = nil
            case .body(let body):
                guard let fault = active, body.readableBytes > 0 else { break }
                if let breakOff = fault.breakOff, sent >= breakOff.after {
                    if wrote { context.flush() }
                    wrote = false
                    breakConnection(context, breakOff)
                    return
                }
                if let stallAfter = fault.stallAfter, !stalled, sent >= stallAfter {
                    stalled = true
                    stall(context, for: fault.stallFor)
                    return
                }
                var allowed = Int64(body.readableBytes)
                if let stallAfter = fault.stallAfter, !stalled { allowed = min(allowed, stallAfter - sent) }
                if let breakOff = fault.breakOff { allowed = min(allowed, breakOff.after - sent) }
                if let rate = fault.bandwidth {
                    let now = NIODeadline.now()
                    tokens = min(Double(Self.burst(rate)), tokens + Double(rate) * Double((now - refilled).nanoseconds) / 1e9)
                    refilled = now
                    // A whole step (or the rest of the part) at a time: waking for every few bytes the
                    // clock lets through would write them in thousands of tiny pieces.
                    let step = Double(min(Self.burst(rate), allowed))
                    guard tokens >= step else {
                        let wait = (step - tokens) / Double(rate)
                        schedule(context, in: .nanoseconds(max(1_000_000, Int64(wait * 1e9))))
                        return
                    }
                    allowed = min(allowed, Int64(tokens))
                    tokens -= Double(allowed)
                }
                guard allowed < Int64(body.readableBytes) else { break }
                // Part of the body now, the rest held: the write's promise goes with its last part.
                context.write(wrapOutboundOut(.body(Self.prefix(of: body, length: Int(allowed)))), promise: nil)
                wrote = true
                sent += allowed
                next.part = .body(Self.dropping(Int(allowed), from: body))
                held[held.startIndex] = next
                continue
            }
            held.removeFirst()
            if case .body(let body) = next.part { sent += Int64(body.readableBytes) }
            context.write(wrapOutboundOut(next.part), promise: next.promise)
            wrote = true
        }
    }

    /// A bandwidth's bucket: a twentieth of a second's worth, so writes come in small, even steps.
    private static func burst(_ rate: Int64) -> Int64 { max(1, rate / 20) }

    private func schedule(_ context: ChannelHandlerContext, in delay: TimeAmount) {
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: delay) { [self] in
            timer = nil
            pump(context)
        }
    }

    /// Sends nothing for `duration` (nil: until the client leaves), watching for the client leaving: a
    /// connection that writes nothing would not notice it otherwise, and would hold what its request took.
    private func stall(_ context: ChannelHandlerContext, for duration: Duration?) {
        let until = duration.map { NIODeadline.now() + TimeAmount($0) }
        let channel = context.channel
        func look() {
            timer = context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(200)) { [self] in
                timer = nil
                if let until, NIODeadline.now() >= until { return pump(context) }
                guard let read = TCPInfo.read(channel) else { return look() }
                read.assumeIsolated().whenComplete { [self] result in
                    guard case .success(let info) = result, info.peerClosed else { return look() }
                    // Closed here, before any error could tell the server the client left: it is told now,
                    // so the response is not taken for delivered.
                    onBreak(info.bytesAcked)
                    closed = true
                    failHeld()
                    channel.close(promise: nil)
                }
            }
        }
        look()
    }

    /// Breaks the connection once what was sent before the break is acknowledged (or a second passed).
    private func breakConnection(_ context: ChannelHandlerContext, _ breakOff: Fault.BreakOff) {
        broken = true
        let channel = context.channel
        let deadline = NIODeadline.now() + .seconds(1)
        func finish(_ acknowledged: UInt64) {
            onBreak(acknowledged)
            closed = true
            failHeld()
            if case .reset = breakOff, let socket = channel as? any SocketOptionProvider {
                // Linger 0: close sends RST at once, as a dropped NAT mapping or a crashed proxy would.
                socket.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in channel.close(promise: nil) }
            } else {
                channel.close(promise: nil)
            }
        }
        func look() {
            guard let read = TCPInfo.read(channel) else { return finish(0) }
            read.assumeIsolated().whenComplete { result in
                guard case .success(let info) = result else { return finish(0) }
                if info.allAcknowledged || NIODeadline.now() >= deadline {
                    finish(info.bytesAcked)
                } else {
                    context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(5)) { look() }
                }
            }
        }
        look()
    }

    private static func prefix(of body: IOData, length: Int) -> IOData {
        switch body {
        case .byteBuffer(let buffer): .byteBuffer(buffer.getSlice(at: buffer.readerIndex, length: length)!)
        case .fileRegion(let region): .fileRegion(FileRegion(fileHandle: region.fileHandle, readerIndex: region.readerIndex, endIndex: region.readerIndex + length))
        }
    }

    private static func dropping(_ count: Int, from body: IOData) -> IOData {
        switch body {
        case .byteBuffer(var buffer):
            buffer.moveReaderIndex(forwardBy: count)
            return .byteBuffer(buffer)
        case .fileRegion(var region):
            region.moveReaderIndex(forwardBy: count)
            return .fileRegion(region)
        }
    }
}
