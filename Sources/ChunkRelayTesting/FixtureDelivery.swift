/// How a fixture's image is delivered.
public enum FixtureDelivery: String, Codable, Sendable, Hashable, CaseIterable {
    /// A gateway job, reassembled and fetched once.
    case retrieve
    /// A gateway job, streamed over Server-Sent Events.
    case stream
    /// Straight from the function's URL, no gateway.
    case direct
}
