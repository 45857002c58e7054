import Foundation

/// One fault as it was injected, for the inspector.
public struct InjectedFault: Sendable, Hashable, Codable {
    /// When (seconds since 1970).
    public var time: Double
    /// `gateway` or `function-url`.
    public var server: String
    /// The request's method.
    public var method: String
    /// The request's path, keys cut short.
    public var path: String
    /// The function it concerned, when known.
    public var function: String?
    /// The fault.
    public var fault: String
    /// `header`, or the rule (`rule 2`).
    public var source: String
}
