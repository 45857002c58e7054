import ChunkRelayServer
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import RelayProtocol
import Synchronization

/// Thousands of event streams held open at once, one per waiting job, each noting when its `queued`
/// events arrive: the benchmark's view of how fast a change in the queue reaches every waiting client.
///
/// Plain NIO connections rather than an HTTP client's pool, which would queue requests beyond a few
/// connections per host.
final class QueueWatchers: Sendable {
    private struct Watcher {
        var queuedAt: [ContinuousClock.Instant] = []
        var started = false
    }

    private let watchers: Mutex<[Watcher]>
    private let channels = Mutex<[any Channel]>([])

    private init(count: Int) {
        watchers = Mutex(Array(repeating: Watcher(), count: count))
    }

    /// Opens an event stream at each of `paths` (a gateway job's `/v1/jobs/{id}/events`, or a peer's),
    /// a few hundred connects at a time; returns once every stream has had its first event.
    static func connect(host: String, port: Int, paths: [String]) async throws -> QueueWatchers {
        let watchers = QueueWatchers(count: paths.count)
        for batch in stride(from: 0, to: paths.count, by: 256) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in batch..<min(batch + 256, paths.count) {
                    group.addTask {
                        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).channelInitializer { channel in
                            channel.eventLoop.makeCompletedFuture {
                                try channel.pipeline.syncOperations.addHTTPClientHandlers()
                                try channel.pipeline.syncOperations.addHandler(Handler(watchers: watchers, index: index))
                            }
                        }.connect(host: host, port: port).get()
                        watchers.channels.withLock { $0.append(channel) }
                        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: paths[index])
                        head.headers.add(name: "Host", value: "\(host):\(port)")
                        head.headers.add(name: "Accept", value: "text/event-stream")
                        channel.write(HTTPClientRequestPart.head(head), promise: nil)
                        try await channel.writeAndFlush(HTTPClientRequestPart.end(nil)).get()
                    }
                }
                try await group.waitForAll()
            }
        }
        try await watchers.waitUntil(within: .seconds(120)) { $0.queuedAt.count >= 1 || $0.started }
        return watchers
    }

    /// How many `queued` events each stream has had so far.
    var counts: [Int] { watchers.withLock { $0.map(\.queuedAt.count) } }

    /// After `start` (when a change was made): how long each stream that is still waiting took to get
    /// its next `queued` event (streams whose job started instead are left out).
    func latencies(since start: ContinuousClock.Instant, countsBefore: [Int], within timeout: Duration) async throws -> [Duration] {
        let deadline = ContinuousClock.now + timeout
        while true {
            let (done, result) = watchers.withLock { watchers -> (Bool, [Duration]) in
                var result: [Duration] = []
                for (index, watcher) in watchers.enumerated() where !watcher.started {
                    guard watcher.queuedAt.count > countsBefore[index] else { return (false, []) }
                    result.append(watcher.queuedAt[countsBefore[index]] - start)
                }
                return (true, result)
            }
            if done { return result }
            guard ContinuousClock.now < deadline else { throw ExitMessage("not every waiting client heard its new position within \(timeout)") }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    private func waitUntil(within timeout: Duration, _ condition: (Watcher) -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while !watchers.withLock({ $0.allSatisfy(condition) }) {
            guard ContinuousClock.now < deadline else { throw ExitMessage("event streams did not open within \(timeout)") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Closes every stream.
    func close() async {
        for channel in channels.withLock({ $0 }) { try? await channel.close() }
    }

    private func record(_ event: ServerSentEvent, index: Int, at time: ContinuousClock.Instant) {
        watchers.withLock { watchers in
            switch event.event {
            case "queued": watchers[index].queuedAt.append(time)
            case "started", "failed", "ready": watchers[index].started = true
            default: break
            }
        }
    }

    private final class Handler: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = HTTPClientResponsePart
        private let watchers: QueueWatchers
        private let index: Int
        private var parser = ServerSentEventParser()

        init(watchers: QueueWatchers, index: Int) {
            self.watchers = watchers
            self.index = index
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .body(let buffer) = unwrapInboundIn(data) else { return }
            let now = ContinuousClock.now
            for event in parser.push(buffer.readableBytesView) {
                watchers.record(event, index: index, at: now)
            }
        }
    }
}
