import RelayProtocol
import Testing

@testable import Gateway

@Suite(.timeLimit(.minutes(1))) struct QueuePositionsTests {
    @Test func placesFollowQueueOrderWhateverTheOrderOfChanges() {
        let queue = QueuePositions()
        queue.load([(id: "b", order: 20), (id: "a", order: 10)])
        queue.insert("d", order: 40)
        queue.insert("c", order: 30)
        // A job requeued after a crash goes in front of everything.
        queue.insert("r", order: -1)
        #expect(["r", "a", "b", "c", "d"].map { queue.position(of: $0) } == [1, 2, 3, 4, 5])
        queue.remove("b")
        queue.remove("r")
        queue.remove("missing")
        #expect(queue.position(of: "b") == nil)
        #expect(["a", "c", "d"].map { queue.position(of: $0) } == [1, 2, 3])
        // Inserting a job twice does not count it twice.
        queue.insert("c", order: 30)
        #expect(queue.count == 3)
        #expect(queue.position(of: "d") == 3)
    }
}

extension QueuePositionsTests {
    /// The `queued` event written without an encoder is byte for byte what the contract's encoding gives,
    /// and what a parser reads back.
    @Test(arguments: [1, 9, 10, 12_345])
    func theQueuedEventIsTheContractsEncoding(position: Int) throws {
        let direct = Gateway.queuedEvent(position: position)
        let general = JobEventContract.encode(.queued, JobEventContract.Queued(position: position))
        #expect(Array(direct.readableBytesView) == general)
        var parser = ServerSentEventParser()
        let parsed = try #require(parser.push(direct.readableBytesView).first)
        #expect(parsed.event == "queued" && parsed.data == "{\"position\":\(position)}")
    }
}
