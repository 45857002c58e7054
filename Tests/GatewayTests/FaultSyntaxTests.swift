import FaultInjection
import Foundation
import Testing

/// How faults and rules are read: what a user writes in a header or a rules file, and the error they
/// get for what cannot be read.
@Suite struct FaultSyntaxTests {
    @Test func faultsAreReadAsWrittenAndWrittenBackTheSame() throws {
        let combined = try Fault(parsing: "latency=200ms, bandwidth=256KiB/s; reset-after=2MiB")
        #expect(combined.latency == .milliseconds(200))
        #expect(combined.bandwidth == 256 << 10)
        #expect(combined.breakOff == .reset(after: 2 << 20))
        #expect(combined.description == "latency=200ms, reset-after=2097152, bandwidth=262144/s")
        #expect(try Fault(parsing: combined.description) == combined)
        #expect(try Fault(parsing: "stall").stallAfter == 0)
        #expect(try Fault(parsing: "stall-for=2s") == Fault(parsing: "stall-after=0, stall-for=2s"))
        #expect(try Fault(parsing: "close-after=10").breakOff == .close(after: 10))
        let throttled = try Fault(parsing: "status=429")
        #expect(throttled.status == 429 && throttled.retryAfter == 1)
        #expect(!throttled.shapesBody)
    }

    @Test(arguments: [
        ("", "empty"),
        ("reset-after", "no value"),
        ("reset-after=lots", "reset-after=lots"),
        ("reset-after=1, close-after=2", "cannot both"),
        ("status=200", "429 or 5xx"),
        ("status=503, reset-after=1", "cannot be combined"),
        ("retry-after=3", "goes with status"),
        ("latency=5", "duration"),
        ("latency=2d", "duration"),
        ("bandwidth=0/s", "at least 1 byte"),
        ("latency=1s, latency=2s", "given twice"),
        ("explode=1", "unknown fault 'explode'"),
    ])
    func whatCannotBeReadIsNamed(text: String, message: String) {
        #expect {
            try Fault(parsing: text)
        } throws: { error in
            (error as? FaultSyntaxError)?.message.contains(message) == true
        }
    }

    @Test func rulesFilesAreCheckedWhenLoaded() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rules-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let good = folder.appendingPathComponent("good.json")
        try Data(#"{"rules": [{"path": "/v1/images/*", "every": 2, "fault": "reset-after=1MiB"}, {"probability": 0.5, "fault": "latency=1s"}]}"#.utf8).write(to: good)
        #expect(try FaultRule.load(contentsOf: good).map(\.fault) == ["reset-after=1MiB", "latency=1s"])
        for (text, message) in [
            (#"{"rules": [{"path": "/x", "fault": "reset"}]}"#, "rule 1: 'reset' has no value"),
            (#"{"rules": [{"fault": "latency=1s"}, {"every": 0, "fault": "stall"}]}"#, "rule 2: every must be at least 1"),
            (#"{"rules": [{"probability": 2, "fault": "stall"}]}"#, "probability must be within 0...1"),
            (#"{"rules": [{"delivery": "carrier-pigeon", "fault": "stall"}]}"#, "delivery is retrieve, stream or direct"),
            (#"[{"fault": "stall"}]"#, "not a fault rules file"),
        ] {
            let bad = folder.appendingPathComponent("bad.json")
            try Data(text.utf8).write(to: bad)
            #expect(throws: FaultSyntaxError.self) { try FaultRule.load(contentsOf: bad) }
            do {
                _ = try FaultRule.load(contentsOf: bad)
            } catch {
                #expect("\(error)".contains(message), "\(error)")
            }
        }
    }

    @Test func pathPatternsTakeAStarForAnyRun() {
        let cases: [(String, String, Bool)] = [
            ("/v1/images/*", "/v1/images/abc", true),
            ("/v1/images/*", "/v1/images/", true),
            ("/v1/images/*", "/v1/jobs/abc", false),
            ("/v1/jobs/*/events", "/v1/jobs/abc/events", true),
            ("/v1/jobs/*/events", "/v1/jobs/abc/chunks/0", false),
            ("*", "/anything", true),
            ("/v1/jobs", "/v1/jobs", true),
            ("/v1/jobs", "/v1/jobs/abc", false),
            ("*a*a", "/banana", true),
            ("*a*a", "/bananas", false),
        ]
        for (pattern, path, expected) in cases {
            let rule = FaultRule(path: pattern, fault: "stall")
            let request = FaultRequest(server: "gateway", method: "GET", path: path, header: nil)
            #expect(FaultInjector.matches(rule, request) == expected, "\(pattern) ~ \(path)")
        }
    }

    @Test func keysAreCutShortInWhatTheInjectorShows() {
        let key = "AbCdEfGhIjKlMnOpQrStUv"
        #expect(FaultInjector.redacted("/v1/images/\(key)") == "/v1/images/AbCd…")
        #expect(FaultInjector.redacted("/v1/jobs/\(key)/events") == "/v1/jobs/\(key)/events")
    }
}
