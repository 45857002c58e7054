import FaultInjection
import Foundation
import HTTPTypes
import HummingbirdCore
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import RelayProtocol
import Synchronization

/// Per connection: refuses requests beyond the connection limit, closes a connection whose request
/// body stalls, and answers malformed or oversized request heads with the gateway's JSON error
/// before closing (the HTTP decoder cannot go on after them).
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let limiter: ConnectionLimiter
    private let bodyReadTimeout: TimeAmount
    /// What request handlers may ask about this connection (it outlives the pipeline).
    let state: ConnectionState
    private var counted = false
    private var refused = false
    private var readingBody = false
    private var responding = false
    private var stallTimer: Scheduled<Void>?

    init(limiter: ConnectionLimiter, bodyReadTimeout: TimeAmount, shapingFaults: Bool = false) {
        self.limiter = limiter
        self.bodyReadTimeout = bodyReadTimeout
        self.state = ConnectionState(shapesFaults: shapingFaults)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { admit() }
        if state.shapesFaults {
            // A fault's break is a reset as far as a one-shot key goes: it credits what was acknowledged.
            let state = self.state
            try? FaultShaper.install(in: context.pipeline.syncOperations) { acknowledged in
                state.markReset()
                state.recordAcknowledgedAtReset(acknowledged)
            }
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        leave()
    }

    func channelActive(context: ChannelHandlerContext) {
        admit()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        leave()
        context.fireChannelInactive()
    }

    private func admit() {
        guard !counted else { return }
        counted = true
        refused = !limiter.acquire()
    }

    private func leave() {
        stallTimer?.cancel()
        stallTimer = nil
        guard counted else { return }
        counted = false
        limiter.release()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if refused {
            if case .head = part {
                refuse(
                    context, status: .serviceUnavailable, code: .serverBusy,
                    message: "the server has \(limiter.limit) connections open; retry shortly", retryAfter: true
                )
            }
            return
        }
        switch part {
        case .head: readingBody = true
        case .body: break
        case .end: readingBody = false
        }
        stallTimer?.cancel()
        stallTimer = nil
        context.fireChannelRead(data)
    }

    /// A read the server asked for and the client does not answer is a stalled body: the timer runs
    /// only then, so a server that is busy (not reading) never cuts a client off.
    func read(context: ChannelHandlerContext) {
        if readingBody, stallTimer == nil {
            let channel = context.channel
            stallTimer = context.eventLoop.scheduleTask(in: bodyReadTimeout) {
                channel.close(promise: nil)
            }
        }
        context.read()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head: responding = true
        case .end: responding = false
        case .body: break
        }
        // A write that fails (the peer reset, the connection closed under it) means the response did not
        // arrive whole, whatever the close looks like afterwards: a one-shot key must not count it delivered.
        let promise = promise ?? context.eventLoop.makePromise()
        let state = self.state
        promise.futureResult.whenFailure { _ in state.markReset() }
        context.write(data, promise: promise)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? IOError, error.errnoCode == ECONNRESET || error.errnoCode == EPIPE {
            state.markReset()
            // The socket is still open here (it closes after this event): what its peer acknowledged is
            // what a broken download credits (on the event loop the read completes at once).
            let state = self.state
            TCPInfo.read(context.channel)?.whenSuccess { info in state.recordAcknowledgedAtReset(info.bytesAcked) }
        }
        guard let parserError = error as? HTTPParserError, !readingBody, !responding else {
            context.fireErrorCaught(error)
            return
        }
        switch parserError {
        case .headerOverflow:
            refuse(context, status: .requestHeaderFieldsTooLarge, code: .headersTooLarge, message: "the request head is larger than the server accepts")
        default:
            refuse(context, status: .badRequest, code: .malformedRequest, message: "the request is not valid HTTP/1.1 (\(parserError))")
        }
    }

    private func refuse(_ context: ChannelHandlerContext, status: HTTPResponse.Status, code: GatewayErrorCode, message: String, retryAfter: Bool = false) {
        let body = GatewayError(status, code, message).jsonBody
        var fields: HTTPFields = [.contentType: "application/json", .contentLength: String(body.readableBytes), .connection: "close"]
        if retryAfter { fields[.retryAfter] = "1" }
        context.write(wrapOutboundOut(.head(HTTPResponse(status: status, headerFields: fields))), promise: nil)
        context.write(wrapOutboundOut(.body(body)), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }
}
