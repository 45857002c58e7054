import Foundation

/// A fixture file that cannot be read or a selection that matches nothing.
public struct FixtureError: Error, CustomStringConvertible, Sendable {
    /// What is wrong, naming the file.
    public var description: String

    init(_ description: String) { self.description = description }
}
