import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTPTypes
import Synchronization

/// Keeps the trailer fields of the last request on a connection.
///
/// Hummingbird's request body ends at `.end` and drops its trailers, but a streamed Lambda response
/// reports a failure only there (`Lambda-Runtime-Function-Error-Type`/`-Body`). This handler sits after
/// the HTTP codec and notes them before the body's end reaches the router.
final class TrailerCapture: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart

    /// The trailers, readable from the request handler's task.
    final class Box: Sendable {
        private let fields = Mutex<HTTPFields?>(nil)
        var value: HTTPFields? { fields.withLock { $0 } }
        func set(_ value: HTTPFields?) { fields.withLock { $0 = value } }
    }

    let box = Box()

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head: box.set(nil)
        case .end(let trailers): box.set(trailers)
        case .body: break
        }
        context.fireChannelRead(data)
    }

    /// The box of the handler on `channel`'s pipeline.
    static func box(on channel: any Channel) async throws -> Box {
        try await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.handler(type: TrailerCapture.self).box
        }.get()
    }
}
