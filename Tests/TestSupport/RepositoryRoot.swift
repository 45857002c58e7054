import Foundation

/// The repository root, for the real `functions/` folder, fixtures and samples.
public let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardizedFileURL
