import Foundation

/// One line of `serve --fault-rules FILE`: which requests get which fault, and how often.
///
/// ```json
/// {"rules": [
///   {"method": "GET", "path": "/v1/images/*", "delivery": "retrieve", "every": 2, "fault": "reset-after=1MiB"},
///   {"path": "/v1/jobs", "method": "POST", "probability": 0.1, "fault": "status=503, retry-after=2"}
/// ]}
/// ```
///
/// Every field but `fault` narrows the match and may be left out. `path` is the request's path, with `*`
/// standing for any run of characters; `function` and `delivery` (`retrieve`, `stream`, or `direct` on a
/// Function URL) match requests about a job (its events, its image) or to a function's URL.
public struct FaultRule: Sendable, Hashable, Codable {
    /// The method, e.g. `GET`.
    public var method: String?
    /// The path pattern, e.g. `/v1/images/*`.
    public var path: String?
    /// The function the request concerns.
    public var function: String?
    /// The delivery the request concerns.
    public var delivery: String?
    /// Only every Nth matching request (1: each).
    public var every: Int?
    /// Only with this probability (0...1).
    public var probability: Double?
    /// The fault, as the header writes it.
    public var fault: String

    /// Makes a rule; each field left nil matches every request.
    public init(
        method: String? = nil, path: String? = nil, function: String? = nil, delivery: String? = nil, every: Int? = nil, probability: Double? = nil,
        fault: String
    ) {
        self.method = method
        self.path = path
        self.function = function
        self.delivery = delivery
        self.every = every
        self.probability = probability
        self.fault = fault
    }

    /// Whether the rule's pattern takes this request (its `every` and `probability` are the injector's).
    func matches(_ request: FaultRequest, facts: FaultRequest.Facts?) -> Bool {
        if let method, method.uppercased() != request.method.uppercased() { return false }
        if let path, !Self.glob(path, matches: request.path) { return false }
        if let function, function != facts?.function { return false }
        if let delivery, delivery != facts?.delivery { return false }
        return true
    }

    /// Whether it needs to know the job a request concerns.
    var needsFacts: Bool { function != nil || delivery != nil }

    /// `*` matches any run of characters (none included); everything else matches itself.
    static func glob(_ pattern: String, matches text: String) -> Bool {
        let pattern = Array(pattern), text = Array(text)
        var p = 0, t = 0
        var star: Int?, resume = 0
        while t < text.count {
            if p < pattern.count, pattern[p] != "*", pattern[p] == text[t] {
                p += 1
                t += 1
            } else if p < pattern.count, pattern[p] == "*" {
                star = p
                resume = t
                p += 1
            } else if let star {
                // Let the last star take one more character, and try again after it.
                p = star + 1
                resume += 1
                t = resume
            } else {
                return false
            }
        }
        while p < pattern.count, pattern[p] == "*" { p += 1 }
        return p == pattern.count
    }

    /// Reads a rules file; an error names the file, the rule and what is wrong with it.
    public static func load(contentsOf file: URL) throws -> [FaultRule] {
        struct File: Decodable { var rules: [FaultRule] }
        let rules: [FaultRule]
        do {
            rules = try JSONDecoder().decode(File.self, from: Data(contentsOf: file)).rules
        } catch let error as DecodingError {
            throw FaultSyntaxError("\(file.path): not a fault rules file ({\"rules\": [{\"path\": …, \"fault\": …}]}): \(error)")
        } catch {
            throw FaultSyntaxError("\(file.path): \(error.localizedDescription)")
        }
        for (index, rule) in rules.enumerated() {
            do {
                _ = try Fault(parsing: rule.fault)
            } catch {
                throw FaultSyntaxError("\(file.path): rule \(index + 1): \(error.message)")
            }
            if let every = rule.every, every < 1 { throw FaultSyntaxError("\(file.path): rule \(index + 1): every must be at least 1") }
            if let probability = rule.probability, !(0...1).contains(probability) {
                throw FaultSyntaxError("\(file.path): rule \(index + 1): probability must be within 0...1")
            }
            if let delivery = rule.delivery, !["retrieve", "stream", "direct"].contains(delivery) {
                throw FaultSyntaxError("\(file.path): rule \(index + 1): delivery is retrieve, stream or direct")
            }
        }
        return rules
    }
}
