import Foundation

/// The files this project ships for handler runtimes, found where SwiftPM copied them: the bootstraps
/// that run Python and Node.js handlers without Docker, and the chunk modules functions import.
public enum RuntimeSupport {
    /// The folder holding `python/` and `node/`.
    public static var directory: URL {
        Bundle.module.bundleURL.appendingPathComponent("Support", isDirectory: true)
    }

    /// The Python bootstrap (`python3 bootstrap.py`, standard library only) and `chunkrelay.py`.
    public static var python: URL { directory.appendingPathComponent("python", isDirectory: true) }

    /// The Node.js bootstrap (`node bootstrap.mjs`) and `chunkrelay.js`.
    public static var node: URL { directory.appendingPathComponent("node", isDirectory: true) }
}
