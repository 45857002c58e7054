/// A command's failure told as one line (ArgumentParser prints it after `Error:` and exits non-zero).
public struct ExitMessage: Error, CustomStringConvertible {
    /// The line.
    public var description: String
    /// Makes one.
    public init(_ description: String) { self.description = description }
}
