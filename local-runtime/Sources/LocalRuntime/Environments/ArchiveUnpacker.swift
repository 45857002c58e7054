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
        // ZIPFoundation reports a failed write without its errno, so the space is checked before
        // (the entries' sizes against what the disk has free) and again after a failure.
        let needed = Self.unpackedSize(of: archive)
        do {
            try? manager.removeItem(at: directory)
            try manager.createDirectory(at: directory, withIntermediateDirectories: true)
            if let needed, let free = Self.freeBytes(at: directory), needed > free {
                throw RuntimeError(.buildFailed, "unpacking \(archive.path) \(outOfSpace(needed: needed, free: free))")
            }
            try manager.unzipItem(at: archive, to: directory)
            try Data(stamp.utf8).write(to: marker)
        } catch let error as RuntimeError {
            try? manager.removeItem(at: directory)
            throw error
        } catch {
            let free = Self.freeBytes(at: directory.deletingLastPathComponent())
            try? manager.removeItem(at: directory)
            let text = "\(error) \(error.localizedDescription)"
            let full = (error as NSError).code == Int(ENOSPC) || text.contains("No space left on device") || text.contains("Disk quota exceeded")
                || (needed != nil && free != nil && free! < needed!)
            let cause = full ? outOfSpace(needed: needed, free: free) : "failed"
            throw RuntimeError(.buildFailed, "unpacking \(archive.path) \(cause): \(error.localizedDescription)")
        }
    }

    private func outOfSpace(needed: Int64?, free: Int64?) -> String {
        let sizes = needed.map { needed in " (it needs \(needed) bytes, \(free.map(String.init) ?? "?") are free)" } ?? ""
        return "ran out of disk space in \(directory.deletingLastPathComponent().path)\(sizes); free some and invoke again"
    }

    /// The archive's entries unpacked, in bytes; nil when it cannot be read (the unpack says why).
    private static func unpackedSize(of archive: URL) -> Int64? {
        guard let zip = try? Archive(url: archive, accessMode: .read, pathEncoding: nil) else { return nil }
        return zip.reduce(Int64(0)) { $0 + Int64($1.uncompressedSize) }
    }

    private static func freeBytes(at url: URL) -> Int64? {
        var info = statvfs()
        guard statvfs(url.path, &info) == 0 else { return nil }
        return Int64(info.f_bavail) * Int64(info.f_frsize)
    }
}
