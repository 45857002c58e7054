import Foundation
import FuzzSupport
import RelayProtocol

// libFuzzer target for the Server-Sent Events parser (the SDK reads every gateway event through it).
// Built with `.ci/fuzz`; without `-DFUZZING` it is a plain program that replays the inputs named on
// its command line, so the normal build checks that it compiles.

/// Checks the parser's properties on one input; a broken property stops the process (a finding).
func checkServerSentEvents(_ bytes: [UInt8]) {
    // 1. How the bytes are split across pushes never changes what comes out.
    var whole = ServerSentEventParser()
    let once = whole.push(bytes)
    var split = ServerSentEventParser()
    let cut = bytes.isEmpty ? 0 : Int(bytes[0]) % (bytes.count + 1)
    let twice = split.push(bytes[..<cut]) + split.push(bytes[cut...])
    var trickle = ServerSentEventParser()
    var oneByOne: [ServerSentEvent] = []
    for byte in bytes { oneByOne += trickle.push(CollectionOfOne(byte)) }
    precondition(once == twice && once == oneByOne, "events depend on how the input was split")
    precondition(whole.lastEventID == split.lastEventID && whole.lastEventID == trickle.lastEventID)
    precondition(whole.reconnectionTime == split.reconnectionTime && whole.reconnectionTime == trickle.reconnectionTime)

    // 2. An event made from the input survives the encoder and the parser.
    let text = String(decoding: bytes, as: UTF8.self)
    let fields = text.split(separator: "\u{1F}", maxSplits: 3, omittingEmptySubsequences: false).map(String.init)
    func singleLine(_ value: String) -> String {
        String(decoding: value.utf8.filter { $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\n") }, as: UTF8.self)
    }
    let name = fields[0]
    let data = fields.count > 1 ? fields[1] : ""
    let id = fields.count > 2 ? fields[2] : ""
    let retry = fields.count > 3 ? Int(fields[3].utf8.reduce(0) { ($0 &* 31 &+ Int($1)) & 0xFFFF }) : nil
    guard data.utf8.count < ServerSentEvent.maximumLineLength - 8 else { return }
    let event = ServerSentEvent(event: name.isEmpty ? nil : name, data: data, id: id.isEmpty ? nil : id, retry: retry)
    var parser = ServerSentEventParser()
    let parsed = parser.push(event.encodedBytes())
    // CR and CRLF inside data are line ends on the wire, so they come back as LF; the encoder keeps
    // line ends out of `event` and `id`, and a reader ignores an id holding NUL.
    let expectedName = singleLine(name)
    let expectedID = singleLine(id)
    let expected = ServerSentEvent(
        event: expectedName.isEmpty ? nil : expectedName, data: data.replacingCRLF(),
        id: expectedID.isEmpty || expectedID.utf8.contains(0) ? nil : expectedID, retry: retry
    )
    precondition(parsed == [expected], "round trip changed \(event) into \(parsed)")
}

extension String {
    fileprivate func replacingCRLF() -> String {
        var out = ""
        var previousCR = false
        for scalar in unicodeScalars {
            if scalar == "\n", previousCR { previousCR = false; continue }
            previousCR = scalar == "\r"
            out.unicodeScalars.append(scalar == "\r" ? "\n" : scalar)
        }
        return out
    }
}

func fuzzServerSentEvents(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    checkServerSentEvents(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

@main
enum Main {
    static func main() throws {
        try FuzzMain.run(fuzz: fuzzServerSentEvents, replay: checkServerSentEvents)
    }
}
