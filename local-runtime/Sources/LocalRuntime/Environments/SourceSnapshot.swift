import Foundation

/// The source files of a function's folder, each by modification time and size: what `serve --watch`
/// compares between polls.
struct SourceSnapshot: Equatable, Sendable {
    struct Stamp: Equatable, Sendable {
        var modified: Date
        var size: Int
    }

    /// Paths relative to the folder.
    private(set) var files: [String: Stamp] = [:]

    /// Folders that hold build output, tools' caches or test data, not sources.
    static func isIgnored(_ name: String) -> Bool {
        name.hasPrefix(".") || name == "__pycache__" || name == "node_modules" || name == "fixtures"
    }

    init(of directory: URL) {
        let keys: [URLResourceKey] = [.contentModificationDateKey, .fileSizeKey, .isDirectoryKey]
        guard let walker = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: keys) else { return }
        let root = directory.standardizedFileURL.path
        for case let url as URL in walker {
            if Self.isIgnored(url.lastPathComponent) {
                walker.skipDescendants()
                continue
            }
            guard let values = try? url.resourceValues(forKeys: Set(keys)), values.isDirectory != true else { continue }
            let path = url.standardizedFileURL.path
            let relative = path.hasPrefix(root + "/") ? String(path.dropFirst(root.count + 1)) : url.lastPathComponent
            files[relative] = Stamp(modified: values.contentModificationDate ?? .distantPast, size: values.fileSize ?? 0)
        }
    }

    /// Paths added, removed or changed since `earlier`, sorted.
    func changes(since earlier: SourceSnapshot) -> [String] {
        Set(files.keys).union(earlier.files.keys).filter { files[$0] != earlier.files[$0] }.sorted()
    }
}
