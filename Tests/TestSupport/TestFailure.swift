/// A test that could not go on: what was expected and what happened instead.
public struct TestFailure: Error, CustomStringConvertible {
    /// What went wrong.
    public var description: String
    /// Makes one.
    public init(_ description: String) { self.description = description }
}
