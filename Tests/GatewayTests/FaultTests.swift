import FaultInjection
import Foundation
import Logging
import RelayProtocol
import TestSupport
import Testing

@testable import Gateway

/// Faults on demand (`serve --faults`): each breaks a real response on a real socket, and what the
/// client gets, what the key still gives and what the gateway still holds are checked.
@Suite(.timeLimit(.minutes(5))) struct FaultTests {
    static func withFaults(_ rules: [FaultRule] = []) -> @Sendable (inout GatewayConfiguration) -> Void {
        { configuration in
            configuration.chunkSize = 1 << 20
            configuration.faults = FaultInjector(rules: rules, logger: Logger(label: "faults-test"))
        }
    }

    static let header = FaultInjector.headerName

    /// Sends a GET on a raw socket and reads until the gateway closes it: the head, and the body bytes
    /// that arrived before the close.
    static func rawGET(_ h: GatewayHarness, _ path: String, headers: [String: String]) async throws -> (head: String, body: [UInt8]) {
        let client = try RawClient(port: try #require(URL(string: h.baseURL)?.port), receiveBuffer: 1 << 20)
        defer { client.reset() }
        client.sendGET(path, headers: headers)
        let bytes = await client.read(atLeast: .max, timeout: .seconds(20))
        let separator = Array("\r\n\r\n".utf8)
        guard let end = (0...(bytes.count - separator.count)).first(where: { Array(bytes[$0..<$0 + separator.count]) == separator }) else {
            throw TestFailure("no response head in \(bytes.count) bytes")
        }
        return (String(decoding: bytes[..<end], as: UTF8.self), Array(bytes[(end + separator.count)...]))
    }

    @Test func aBodyBrokenOffByAFaultLeavesTheKeyForTheRestAndIsCreditedWhatArrived() async throws {
        try await GatewayHarness.run(configure: Self.withFaults()) { h in
            let (created, image) = try await h.readyImage(bytes: 3 << 20)
            let path = try #require(created.image)
            // A clean close after 1 MiB: the client has exactly that much of a 3 MiB body.
            let closed = try await Self.rawGET(h, path, headers: [Self.header: "close-after=1MiB"])
            #expect(closed.head.hasPrefix("HTTP/1.1 200"))
            #expect(closed.body == Array(image[0..<(1 << 20)]))
            // A reset after 2 MiB of the rest: at most that much, and never a byte that is not the image's.
            let reset = try await Self.rawGET(h, path, headers: [Self.header: "reset-after=1MiB", "Range": "bytes=\(1 << 20)-"])
            #expect(reset.head.hasPrefix("HTTP/1.1 206"))
            #expect(reset.body.count <= 1 << 20)
            #expect(reset.body == Array(image[(1 << 20)..<((1 << 20) + reset.body.count)]))
            let have = (1 << 20) + reset.body.count
            // The key is still there for what the client lacks, and once that arrives it is consumed: the
            // broken transfers credited what they delivered, no more and no less.
            let rest = try await h.download(path, range: "bytes=\(have)-")
            #expect(rest.status == 206)
            #expect(Array(rest.body.readableBytesView) == Array(image[have...]))
            try await h.eventually("the key is consumed") { try await h.request(.HEAD, path).status == 410 }
        }
    }

    @Test func aGatewayStartedWithoutFaultsIgnoresTheHeader() async throws {
        try await GatewayHarness.run(configure: { $0.chunkSize = 1 << 20 }) { h in
            let (created, image) = try await h.readyImage(bytes: 2 << 20)
            let path = try #require(created.image)
            #expect(try await h.request(.HEAD, path, headers: [(Self.header, "status=503")]).status == 200)
            #expect(try await h.request(.GET, "/v1/jobs/\(created.id)", headers: [(Self.header, "not a fault")]).status == 200)
            let whole = try await h.request(.GET, path, headers: [(Self.header, "reset-after=1KiB")])
            #expect(whole.status == 200)
            #expect(Array(whole.body.readableBytesView) == image)
        }
    }

    @Test func statusLatencyAndMalformedFaultsAnswerAsTheySay() async throws {
        try await GatewayHarness.run(configure: Self.withFaults()) { h in
            let (created, _) = try await h.readyImage(bytes: 10_000)
            let path = try #require(created.image)
            let throttled = try await h.request(.GET, path, headers: [(Self.header, "status=429, retry-after=7")])
            #expect(throttled.status == 429)
            #expect(throttled.headers["retry-after"] == "7")
            #expect(throttled.errorCode == "injected_fault")
            let malformed = try await h.request(.GET, path, headers: [(Self.header, "reset-after=lots")])
            #expect(malformed.status == 400)
            #expect(malformed.errorCode == "invalid_fault")
            #expect(malformed.text.contains("reset-after=lots"))
            let started = ContinuousClock.now
            let late = try await h.request(.HEAD, path, headers: [(Self.header, "latency=400ms")])
            #expect(late.status == 200)
            #expect(ContinuousClock.now - started >= .milliseconds(400))
            // None of it touched the image: it is still there, whole.
            #expect(try await h.request(.HEAD, path).status == 200)
            #expect(h.gateway.configuration.faults?.recent().map(\.fault) == ["status=429, retry-after=7", "latency=400ms"])
            #expect(h.gateway.configuration.faults?.recent().allSatisfy { !$0.path.contains(String(path.dropFirst("/v1/images/".count))) } == true)
        }
    }

    @Test func aBandwidthFaultPacesTheBody() async throws {
        try await GatewayHarness.run(configure: Self.withFaults()) { h in
            let (created, image) = try await h.readyImage(bytes: 1 << 20)
            let started = ContinuousClock.now
            let paced = try await h.request(.GET, try #require(created.image), headers: [(Self.header, "bandwidth=1MiB/s")])
            // A twentieth of a second goes out at once; the rest at 1 MiB a second.
            #expect(ContinuousClock.now - started >= .milliseconds(900))
            #expect(Array(paced.body.readableBytesView) == image)
        }
    }

    @Test func rulesMatchByPathAndDeliveryEveryNthRequest() async throws {
        let rule = FaultRule(method: "HEAD", path: "/v1/images/*", delivery: "retrieve", every: 2, fault: "status=503, retry-after=2")
        try await GatewayHarness.run(configure: Self.withFaults([rule])) { h in
            let (created, _) = try await h.readyImage(bytes: 10_000)
            let path = try #require(created.image)
            let statuses = try await Array(0..<4).asyncMap { _ in try await h.request(.HEAD, path).status }
            #expect(statuses == [200, 503, 200, 503])
            // Another method, another path: no match.
            #expect(try await h.request(.GET, "/v1/jobs/\(created.id)").status == 200)
            #expect(h.gateway.configuration.faults?.recent().map(\.source) == ["rule 1", "rule 1"])
        }
    }

    @Test func aStalledResponseLetsGoOfTheKeyWhenItsClientLeaves() async throws {
        try await GatewayHarness.run(configure: Self.withFaults()) { h in
            let (created, image) = try await h.readyImage(bytes: 2 << 20)
            let path = try #require(created.image)
            let client = try RawClient(port: try #require(URL(string: h.baseURL)?.port))
            let started = ContinuousClock.now
            client.sendGET(path, headers: [Self.header: "stall-after=64KiB"])
            let first = await client.read(atLeast: 64 << 10, timeout: .seconds(10))
            #expect(first.count >= 64 << 10)
            // The transfer holds its claim while stalled: another GET is told it is in flight.
            let second = try await h.request(.GET, path)
            #expect(second.errorCode == "image_in_flight", "\(second.status) \(second.text.prefix(300)) after \(ContinuousClock.now - started)")
            client.reset()
            // Nothing is written while stalled, yet the gateway notices the client left and lets go.
            try await h.eventually("the stalled transfer's claim is released") { h.gateway.lifecycle.gauges.claims == 0 }
            let whole = try await h.download(path)
            #expect(whole.status == 200)
            #expect(Array(whole.body.readableBytesView) == image)
        }
    }
}
