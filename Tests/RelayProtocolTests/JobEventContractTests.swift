import Foundation
import TestSupport
import Testing

@testable import RelayProtocol

/// The event contract typed once: ids parse as they print, payloads round-trip, and the browser page
/// (which cannot link Swift) listens for every event the contract names.
@Suite(.timeLimit(.minutes(1))) struct JobEventContractTests {
    @Test func chunkEventIDsParseWhatTheyPrint() {
        #expect(ChunkEventID(attempt: 1, index: 5).description == "5")
        #expect(ChunkEventID(attempt: 2, index: 5).description == "2:5")
        #expect(ChunkEventID("5") == ChunkEventID(attempt: 1, index: 5))
        #expect(ChunkEventID("3:0") == ChunkEventID(attempt: 3, index: 0))
        #expect(ChunkEventID("-1") == ChunkEventID(attempt: 1, index: -1))
        for bad in ["+5", "1:", ":1", "0:3", "1:2:3", "x", "", " 5", "-2"] {
            #expect(ChunkEventID(bad) == nil, "\(bad) is not an event id")
        }
    }

    @Test func payloadsRoundTripThroughJSON() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let retrying = JobEventContract.Retrying(attempt: 2, code: "function_crashed", message: "exit 3")
        #expect(String(decoding: try encoder.encode(retrying), as: UTF8.self) == #"{"attempt":2,"code":"function_crashed","message":"exit 3"}"#)
        #expect(try JSONDecoder().decode(JobEventContract.Retrying.self, from: encoder.encode(retrying)) == retrying)
        let ready = JobEventContract.Ready(image: "/v1/images/k", bytes: 10, sha256: "ab")
        #expect(try JSONDecoder().decode(JobEventContract.Ready.self, from: encoder.encode(ready)) == ready)
    }

    @Test func theBrowserPageListensForEveryEventOfTheContract() throws {
        let page = repositoryRoot.appendingPathComponent("samples/browser/app.js")
        let script = try String(contentsOf: page, encoding: .utf8)
        for name in JobEventContract.Name.allCases where name != .ready {
            // The page runs stream mode; `ready` belongs to retrieve mode only.
            #expect(script.contains(#"addEventListener("\#(name.rawValue)""#), "the page does not handle `\(name.rawValue)`")
        }
    }

    @Test func aLatchGivesItsValueToEarlyAndLateWaitersAndNilToACancelledOne() async throws {
        let latch = Latch<Int>()
        async let early = latch.wait()
        let cancelled = Task { await latch.wait() }
        while latch.waiterCount < 2 { await Task.yield() }
        cancelled.cancel()
        #expect(await cancelled.value == nil)
        #expect(latch.set(7))
        #expect(!latch.set(8), "the first value wins")
        #expect(await early == 7)
        #expect(await latch.wait() == 7, "a waiter after the value gets it at once")
    }
}
