import Foundation

/// One row of a fixture run: a case through one delivery.
public struct FixtureResult: Sendable, Hashable {
    /// The case.
    public var fixture: Fixture
    /// The delivery it went through.
    public var delivery: FixtureDelivery
    /// What it produced.
    public var outcome: FixtureOutcome
    /// Why it does not meet the expectation; empty when it passed.
    public var problems: [String]
    /// Whether this row wrote the case's expectation (`--record`).
    public var recorded: Bool
    /// How long it took, job creation to verified file.
    public var duration: Duration

    /// Whether it met the expectation (a recorded row always does).
    public var passed: Bool { problems.isEmpty }
}
