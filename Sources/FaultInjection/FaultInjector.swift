import Foundation
import Logging
import NIOCore
import RelayProtocol
import Synchronization

/// Decides which requests get a fault (`serve --faults`, `--fault-rules`), in one place for the gateway
/// and the Function URLs, and remembers the faults it injected for the inspector and the log.
///
/// A server that was not given an injector has no faults: it never reads the header.
public final class FaultInjector: Sendable {
    /// The request header that asks for a fault.
    public static let headerName = "X-ChunkRelay-Fault"

    private let rules: [FaultRule]
    /// Each rule's fault, read once (`FaultRule.load` has checked them all).
    private let faults: [Fault?]
    private let logger: Logger
    private let state = Mutex(State())
    private let injected = Atomic<Int>(0)

    private struct State {
        var matches: [Int: Int] = [:]
        var recent: [InjectedFault] = []
    }

    /// How many injected faults `recent` keeps.
    public static let remembered = 200

    /// An injector that honours the header and, before it, `rules` (first rule that fires wins).
    public init(rules: [FaultRule] = [], logger: Logger) {
        self.rules = rules
        self.faults = rules.map { try? Fault(parsing: $0.fault) }
        self.logger = logger
    }

    /// How many faults were injected so far: grows with each, past what `recent` keeps.
    public var count: Int { injected.load(ordering: .relaxed) }

    /// Whether deciding may need the job a request concerns (some rule names a function or delivery).
    public var needsFacts: Bool { rules.contains(where: \.needsFacts) }

    /// The fault for `request`, if any: its header's, else the first rule that fires. `facts` is asked
    /// only when a rule needs it. A malformed header throws, so its sender learns why nothing happened.
    public func fault(for request: FaultRequest, facts: () async -> FaultRequest.Facts?) async throws(FaultSyntaxError) -> Fault? {
        if let header = request.header {
            let fault = try Fault(parsing: header)
            remember(fault, request, facts: nil, source: "header")
            return fault
        }
        guard !rules.isEmpty else { return nil }
        let known = needsFacts ? await facts() : nil
        for (index, rule) in rules.enumerated() where rule.matches(request, facts: known) {
            let count = state.withLock { state -> Int in
                state.matches[index, default: 0] += 1
                return state.matches[index]!
            }
            guard count % (rule.every ?? 1) == 0 else { continue }
            if let probability = rule.probability, Double.random(in: 0..<1) >= probability { continue }
            guard let fault = faults[index] else { continue }
            remember(fault, request, facts: known, source: "rule \(index + 1)")
            return fault
        }
        return nil
    }

    /// Whether `rule`'s method and path take `request` (what a rule names of the job is not looked at).
    public static func matches(_ rule: FaultRule, _ request: FaultRequest) -> Bool {
        rule.matches(request, facts: nil)
    }

    /// The faults injected most recently, oldest first.
    public func recent() -> [InjectedFault] {
        state.withLock { $0.recent }
    }

    private func remember(_ fault: Fault, _ request: FaultRequest, facts: FaultRequest.Facts?, source: String) {
        let path = Self.redacted(request.path)
        let injected = InjectedFault(
            time: Date().timeIntervalSince1970, server: request.server, method: request.method, path: path, function: facts?.function, fault: fault.description, source: source)
        state.withLock { state in
            state.recent.append(injected)
            if state.recent.count > Self.remembered { state.recent.removeFirst(state.recent.count - Self.remembered) }
        }
        self.injected.add(1, ordering: .relaxed)
        logger.notice("fault injected (\(source)): \(fault) on \(request.server) \(request.method) \(path)")
    }

    /// A path with any image key cut to its first four characters: keys are capabilities, and logs and
    /// the inspector are read by more people than the key's holder.
    public static func redacted(_ path: String) -> String {
        var segments = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        for index in segments.indices.dropFirst() where segments[index - 1] == "images" && RandomToken.isWellFormed(segments[index]) {
            segments[index] = RandomToken.shortened(segments[index])
        }
        return segments.joined(separator: "/")
    }

    /// Carries out the parts of `fault` that come before the response: waits its latency and arms the
    /// connection's shaper for its body. Returns the status to answer instead, if it has one.
    public func prepare(_ fault: Fault, on channel: any Channel) async -> (status: Int, retryAfter: Int)? {
        if let latency = fault.latency { try? await Task.sleep(for: latency) }
        if let status = fault.status { return (status, fault.retryAfter) }
        if fault.shapesBody { await FaultShaper.arm(fault, on: channel) }
        return nil
    }
}
