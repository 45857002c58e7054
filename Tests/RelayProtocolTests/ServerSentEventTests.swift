import Foundation
import RelayProtocol
import Testing

@Suite(.timeLimit(.minutes(5))) struct ServerSentEventTests {
    @Test func encodesFieldsAndDispatchesOnABlankLine() {
        let event = ServerSentEvent(event: "queued", data: #"{"position":3}"#, id: "7", retry: 2000)
        #expect(event.encoded() == "retry: 2000\nevent: queued\nid: 7\ndata: {\"position\":3}\n\n")
        #expect(ServerSentEvent(data: "a\nb").encoded() == "data: a\ndata: b\n\n")
    }

    @Test func wrapsLongLinesBelow64KiB() {
        let payload = String(repeating: "A", count: 200_000)
        let text = ServerSentEvent(event: "chunk", data: payload, id: "0").encoded()
        for line in text.split(separator: "\n") {
            #expect(line.utf8.count <= ServerSentEvent.maximumLineLength)
        }
        var parser = ServerSentEventParser()
        let events = parser.push(Array(text.utf8))
        #expect(events.count == 1)
        #expect(events[0].data.replacingOccurrences(of: "\n", with: "") == payload)
    }

    @Test func roundTripsThroughTheParserInAnySplit() {
        let events = [
            ServerSentEvent(event: "queued", data: #"{"position":1}"#),
            ServerSentEvent(event: "chunk", data: "AAAA\nBBBB", id: "0"),
            ServerSentEvent(event: "done", data: "{}", id: "0"),
        ]
        let stream = Array((ServerSentEvent.comment("hi") + events.map { $0.encoded() }.joined()).utf8)
        for split in [1, 2, 3, 7, stream.count] {
            var parser = ServerSentEventParser()
            var parsed: [ServerSentEvent] = []
            var offset = 0
            while offset < stream.count {
                parsed += parser.push(stream[offset..<min(stream.count, offset + split)])
                offset += split
            }
            #expect(parsed == events, "split \(split)")
        }
    }

    @Test func followsTheWHATWGRules() {
        var parser = ServerSentEventParser()
        // BOM skipped, CR and CRLF line ends, no space after colon, comment ignored, field without colon.
        let text = "\u{FEFF}data:first\r\ndata\rdata: third\r\n\r\n: comment\nevent: named\ndata: x\n\n"
        let events = parser.push(Array(text.utf8))
        #expect(events == [ServerSentEvent(data: "first\n\nthird"), ServerSentEvent(event: "named", data: "x")])

        // An id with NUL is ignored; the last id persists to later events; empty data dispatches nothing.
        var ids = ServerSentEventParser()
        let withIDs = ids.push(Array("id: 5\ndata: a\n\nid: bad\u{0}id\ndata: b\n\nevent: nothing\n\ndata: c\n\n".utf8))
        #expect(withIDs.map(\.id) == ["5", "5", "5"])
        #expect(withIDs.map(\.event) == [nil, nil, nil])
        #expect(ids.lastEventID == "5")

        // retry takes digits only.
        var retry = ServerSentEventParser()
        _ = retry.push(Array("retry: 15x\n\nretry: 3000\n\n".utf8))
        #expect(retry.reconnectionTime == 3000)

        // An unterminated event at the end is not dispatched.
        var partial = ServerSentEventParser()
        #expect(partial.push(Array("data: unfinished\n".utf8)).isEmpty)
    }
}

@Suite(.timeLimit(.minutes(5))) struct Base64EventTests {
    @Test(arguments: [0, 1, 2, 3, 100, 48_000, 48_001, 100_000])
    func matchesTheStringEncoderAndParsesBack(count: Int) throws {
        let payload = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 7) }
        let length = ServerSentEvent.base64EventLength(event: "chunk", id: "12", payloadCount: count)
        var output = [UInt8](repeating: 0, count: length)
        let written = payload.withUnsafeBytes { input in
            output.withUnsafeMutableBytes { ServerSentEvent.encodeBase64Event(event: "chunk", id: "12", payload: input, into: $0) }
        }
        #expect(written == length)
        let expected = ServerSentEvent(event: "chunk", data: Data(payload).base64EncodedString(), id: "12")
        var parser = ServerSentEventParser()
        let events = parser.push(output)
        #expect(events.count == 1)
        #expect(events.first?.event == "chunk" && events.first?.id == "12")
        #expect(events.first?.data.replacingOccurrences(of: "\n", with: "") == expected.data)
        for line in output.split(separator: UInt8(ascii: "\n")) { #expect(line.count <= ServerSentEvent.maximumLineLength) }
    }

    /// Found by the fuzzer (Tests/Fuzz/crashes): a CR inside data was written as it was, and a reader
    /// (which ends lines at CR too) cut the data short and misread the rest as another field.
    @Test(arguments: ["a\rb", "\r\u{06}\u{FFFD}=", "\0?\0\u{01}\0\rL", "x\r\ny\rz\n", "\r"])
    func lineEndsInsideDataSurviveEncoding(_ data: String) {
        var parser = ServerSentEventParser()
        let events = parser.push(ServerSentEvent(event: "e\rvil", data: data, id: "1\n2").encodedBytes())
        let normalized = data.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
        #expect(events == [ServerSentEvent(event: "evil", data: normalized, id: "12")])
    }
}
