import Foundation
import Logging
import ZIPFoundation

/// Unpacks a function's `.zip` (a template's `CodeUri: build/function.zip`) into its folder under the
/// state directory before its first start, and again when the archive changes.
///
/// A failed unpack leaves no folder behind: a half-unpacked function must not pass for one that is
/// there. Running out of disk space says so first, as a failed build does.
struct ArchiveUnpacker {
    var archive: URL
    var directory: URL
    var logger: Logger

    /// Written last, with the archive's size and time: the folder is whole and of this archive.
    private var marker: URL { directory.appendingPathComponent(".chunkrelay-unpacked") }

    private func stamp() throws(RuntimeError) -> String {
        let attributes: [FileAttributeKey: Any]
        do {
            attributes = try FileManager.default.attributesOfItem(atPath: archive.path)
        } catch {
            throw RuntimeError(.buildFailed, "cannot read \(archive.path): \(error.localizedDescription)")
        }
        let size = (attributes[.size] as? NSNumber)?.int64Value ?? -1
        let modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        return "\(archive.path) \(size) \(modified)"
    }

    /// Unpacks unless the folder already holds this archive whole.
    func unpack(function: String, force: Bool) throws(RuntimeError) {
        let stamp = try stamp()
        if !force, (try? String(contentsOf: marker, encoding: .utf8)) == stamp { return }
        logger.notice("\(function): unpacking \(archive.path) into \(directory.path)")
        let manager = FileManager.default
        do {
            try? manager.removeItem(at: directory)
            try manager.createDirectory(at: directory, withIntermediateDirectories: true)
            try manager.unzipItem(at: archive, to: directory)
            try Data(stamp.utf8).write(to: marker)
        } catch {
            try? manager.removeItem(at: directory)
            let text = "\(error) \(error.localizedDescription)"
            let full = (error as NSError).code == Int(ENOSPC) || text.contains("No space left on device") || text.contains("Disk quota exceeded")
            let cause = full ? "ran out of disk space in \(directory.deletingLastPathComponent().path) (free some and invoke again)" : "failed"
            throw RuntimeError(.buildFailed, "unpacking \(archive.path) \(cause): \(error.localizedDescription)")
        }
    }
}
