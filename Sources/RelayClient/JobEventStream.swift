import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import RelayProtocol

/// A job's events as an `AsyncSequence`, reconnecting with `Last-Event-ID` (the last chunk index
/// received) when the connection drops, so no chunk is lost or repeated. Ends after the final event.
public struct JobEventStream: AsyncSequence, Sendable {
    public typealias Element = JobEvent

    let url: String
    let httpClient: HTTPClient
    let lastEventID: String?
    let maximumReconnects: Int
    var headers: HTTPHeaders = [:]

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(stream: self, lastEventID: lastEventID)
    }

    /// Pulls events; connects lazily and reconnects on a dropped connection.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let stream: JobEventStream
        /// The id of the last chunk event received, sent back as `Last-Event-ID` on a reconnect.
        var lastEventID: String?
        var body: HTTPClientResponse.Body.AsyncIterator?
        var parser = ServerSentEventParser()
        var pending: [(JobEvent, String?)] = []
        var reconnects = 0
        var finished = false
        /// Whether the current connection brought a chunk, and when it was made: what counts as progress.
        var progressed = false
        var connectedAt = ContinuousClock.now

        init(stream: JobEventStream, lastEventID: String?) {
            self.stream = stream
            self.lastEventID = lastEventID
        }

        public mutating func next() async throws -> JobEvent? {
            while true {
                if !pending.isEmpty {
                    let (event, id) = pending.removeFirst()
                    if case .chunk = event { lastEventID = id }
                    if event.isFinal { finished = true }
                    return event
                }
                if finished { return nil }
                do {
                    if body == nil { try await connect() }
                    guard let buffer = try await body?.next() else {
                        // The server ended the stream before a final event (it restarted, say): reconnect.
                        throw RelayClientError(status: 0, code: "stream_ended", message: "the event stream ended early")
                    }
                    for event in parser.push(buffer.readableBytesView) {
                        guard let typed = try JobEvent(event) else { continue }
                        pending.append((typed, event.id))
                        if case .chunk = typed { progressed = true }
                    }
                } catch let error as RelayClientError where error.status != 0 {
                    // Told to come back later (429/503 with Retry-After): the same request may succeed then.
                    guard reconnects < stream.maximumReconnects, let delay = error.retryDelay() else { throw error }
                    body = nil
                    parser = ServerSentEventParser()
                    reconnects += 1
                    try await Task.sleep(for: delay)
                } catch {
                    // The server's `retry:` asks how long to wait; a partial event is discarded, as browsers do.
                    let delay = Swift.min(parser.reconnectionTime ?? 500, 5000)
                    body = nil
                    parser = ServerSentEventParser()
                    // A connection that brought a chunk, or stayed up a while, was progress: the count of
                    // drops in a row starts again. One that always breaks inside the same event is not.
                    if progressed || ContinuousClock.now - connectedAt >= .seconds(10) { reconnects = 0 }
                    reconnects += 1
                    guard reconnects <= stream.maximumReconnects else { throw error }
                    try await Task.sleep(for: .milliseconds(delay))
                }
            }
        }

        private mutating func connect() async throws {
            var request = HTTPClientRequest(url: stream.url)
            request.headers.add(contentsOf: stream.headers)
            request.headers.add(name: "Accept", value: "text/event-stream")
            if let lastEventID { request.headers.add(name: "Last-Event-ID", value: lastEventID) }
            progressed = false
            connectedAt = .now
            let response = try await stream.httpClient.execute(request, deadline: .distantFuture)
            guard response.status == .ok else { throw try await RelayClientError(response: response) }
            body = response.body.makeAsyncIterator()
        }
    }
}
