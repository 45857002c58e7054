import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A real small file system (a tmpfs of a few MiB) for tests of a full disk: writes to it fail with
/// `ENOSPC` as they would on a full laptop disk. Mounting takes root (CI runs as root).
public struct SmallDisk: Sendable {
    /// Where it is mounted.
    public let url: URL

    /// Whether this process may mount one.
    public static var available: Bool {
        #if os(Linux)
        geteuid() == 0
        #else
        false
        #endif
    }

    /// Mounts a tmpfs of `megabytes` MiB on a fresh folder, runs `body`, and unmounts it.
    public static func with<T>(megabytes: Int, _ body: (SmallDisk) async throws -> T) async throws -> T {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("small-disk-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: url) }
        #if os(Linux)
        guard mount("tmpfs", url.path, "tmpfs", 0, "size=\(megabytes)m,mode=0700") == 0 else {
            throw TestFailure("could not mount a \(megabytes) MiB tmpfs at \(url.path): errno \(errno)")
        }
        defer { umount2(url.path, Int32(MNT_DETACH)) }
        return try await body(SmallDisk(url: url))
        #else
        throw TestFailure("a small disk needs Linux")
        #endif
    }

    /// Makes it `megabytes` MiB (a remount: what it holds stays), as when a user frees space.
    public func resize(megabytes: Int) throws {
        #if os(Linux)
        guard mount("tmpfs", url.path, "tmpfs", UInt(MS_REMOUNT), "size=\(megabytes)m") == 0 else {
            throw TestFailure("could not resize the tmpfs at \(url.path): errno \(errno)")
        }
        #endif
    }

    /// Free bytes on it now.
    public var freeBytes: Int64 {
        var info = statvfs()
        guard statvfs(url.path, &info) == 0 else { return -1 }
        return Int64(info.f_bavail) * Int64(info.f_frsize)
    }

    /// Writes a filler file that leaves about `leaving` bytes free (all of it taken when 0: the last
    /// write fails with `ENOSPC`); returns its path, to delete to give the space back.
    @discardableResult
    public func fill(leaving: Int64 = 0, name: String = "filler") throws -> URL {
        let path = url.appendingPathComponent(name)
        let descriptor = open(path.path, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        guard descriptor >= 0 else { throw TestFailure("could not create \(path.path)") }
        defer { close(descriptor) }
        let block = [UInt8](repeating: 0xA5, count: 64 << 10)
        while freeBytes > leaving {
            let count = Int(min(Int64(block.count), max(4096, freeBytes - leaving)))
            let written = block.withUnsafeBytes { write(descriptor, $0.baseAddress, count) }
            if written <= 0 { break }  // ENOSPC: full
        }
        return path
    }
}
