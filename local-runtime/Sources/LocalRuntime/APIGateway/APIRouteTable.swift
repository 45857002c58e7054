import Foundation

/// Finds the route of a request among a template's `Api` and `HttpApi` events, as API Gateway picks:
/// the most specific path wins (a literal segment over `{name}` over `{proxy+}`), and a route for the
/// method over `ANY`.
struct APIRouteTable: Sendable {
    /// A request's route and its `{name}` values.
    struct Match: Sendable {
        var route: APIRoute
        var parameters: [String: String]
    }

    let routes: [APIRoute]

    /// The route for `method` and `path` (decoded segments are matched; values are decoded).
    func match(method: String, path: String) -> Match? {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true).map { String($0).removingPercentEncoding ?? String($0) }
        var best: (match: Match, score: [Int])?
        for route in routes where route.method == "ANY" || route.method == method.uppercased() {
            guard let (parameters, score) = Self.bind(route.path, to: segments) else { continue }
            // Literal segments first, then named ones, then the method, compared in that order.
            let rank = score + [route.method == "ANY" ? 0 : 1]
            if best.map({ $0.score.lexicographicallyPrecedes(rank) }) ?? true {
                best = (Match(route: route, parameters: parameters), rank)
            }
        }
        return best?.match
    }

    /// The parameters `pattern` binds in `segments`, and how specific the binding is; nil if it does not match.
    private static func bind(_ pattern: String, to segments: [String]) -> ([String: String], [Int])? {
        let parts = pattern.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        var parameters: [String: String] = [:]
        var literals = 0
        var named = 0
        for (index, part) in parts.enumerated() {
            if part.hasPrefix("{"), part.hasSuffix("+}") {
                // Greedy: the rest of the path, one segment at least, and only as the last part.
                guard index == parts.count - 1, segments.count > index else { return nil }
                parameters[String(part.dropFirst().dropLast(2))] = segments[index...].joined(separator: "/")
                return (parameters, [literals, named])
            }
            guard index < segments.count else { return nil }
            if part.hasPrefix("{"), part.hasSuffix("}") {
                parameters[String(part.dropFirst().dropLast())] = segments[index]
                named += 1
            } else if part == segments[index] {
                literals += 1
            } else {
                return nil
            }
        }
        guard parts.count == segments.count else { return nil }
        // An exact match (no greedy part) outranks any greedy one with the same literals.
        return (parameters, [literals, named + 1])
    }
}
