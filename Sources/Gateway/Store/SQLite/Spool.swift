import Crypto
import Foundation
import Hummingbird
import NIOCore
import NIOFileSystem
import RelayProtocol

/// The files behind jobs: one spool file per attempt while chunks arrive (each chunk written at
/// `index × cap`), then one image file per job once verified.
///
/// A new attempt writes a new file, so a late chunk from an abandoned attempt can never land in
/// the bytes of its retry. Names are built only from well-formed tokens, never from raw input.
struct Spool: ChunkStorage {
    let spoolDirectory: FilePath
    let imageDirectory: FilePath
    private let fileSystem = FileSystem.shared

    init(stateDirectory: URL) {
        spoolDirectory = FilePath(stateDirectory.appendingPathComponent("spool").path)
        imageDirectory = FilePath(stateDirectory.appendingPathComponent("images").path)
    }

    /// Creates the folders with owner-only permissions.
    func prepare() async throws {
        for directory in [spoolDirectory, imageDirectory] {
            try await fileSystem.createDirectory(at: directory, withIntermediateDirectories: true, permissions: .ownerReadWriteExecute)
        }
    }

    func spoolPath(jobId: String, attempt: Int) -> FilePath {
        precondition(RandomToken.isWellFormed(jobId))
        return spoolDirectory.appending("\(jobId).\(attempt).part")
    }

    func imagePath(jobId: String) -> FilePath {
        precondition(RandomToken.isWellFormed(jobId))
        return imageDirectory.appending("\(jobId).img")
    }

    /// Writes a verified chunk at its offset, `index × cap`.
    func write(_ chunk: ByteBuffer, jobId: String, attempt: Int, index: Int, chunkSize: Int) async throws {
        let offset = Int64(index) * Int64(chunkSize)
        _ = try await fileSystem.withFileHandle(
            forWritingAt: spoolPath(jobId: jobId, attempt: attempt),
            options: .modifyFile(createIfNecessary: true, permissions: .ownerReadWrite)
        ) { handle in
            try await handle.write(contentsOf: chunk, toAbsoluteOffset: offset)
        }
    }

    /// Finishes the whole image's SHA-256 of an attempt's spool file from what was hashed as chunks
    /// arrived (`progress`; nil after a restart), reading back only the chunks that were not; truncates
    /// the file to `length`, flushes it to disk and returns the digest (the caller compares it before
    /// marking the job ready) and how many bytes had to be read back.
    func seal(jobId: String, attempt: Int, length: Int64, chunkSize: Int, progress: AttemptDigest.Progress?) async throws -> (digest: ContentDigest, readBack: Int64) {
        let path = spoolPath(jobId: jobId, attempt: attempt)
        if length == 0 {
            _ = try await fileSystem.withFileHandle(forWritingAt: path, options: .modifyFile(createIfNecessary: true, permissions: .ownerReadWrite)) { _ in 0 }
        }
        let cap = Int64(chunkSize)
        let chunkCount = Int((length + cap - 1) / cap)
        return try await fileSystem.withFileHandle(forReadingAndWritingAt: path, options: .modifyFile(createIfNecessary: false)) { handle in
            var hasher = progress?.hasher ?? SHA256()
            let held = progress?.held ?? [:]
            var index = progress?.hashedChunks ?? 0
            var readBack: Int64 = 0
            while index < chunkCount {
                if let chunk = held[index] {
                    chunk.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
                    index += 1
                    continue
                }
                // The run of chunks up to the next one still in memory comes from the file.
                var end = index + 1
                while end < chunkCount, held[end] == nil { end += 1 }
                let range = Int64(index) * cap..<min(length, Int64(end) * cap)
                for try await chunk in handle.readChunks(in: range, chunkLength: .kibibytes(256)) {
                    chunk.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
                }
                readBack += Int64(range.count)
                index = end
            }
            try await handle.resize(to: .bytes(length))
            try await handle.synchronize()
            return (ContentDigest(hasher.finalize()), readBack)
        }
    }

    /// Moves a sealed spool file to where images are served from.
    func promote(jobId: String, attempt: Int) async throws {
        let target = imagePath(jobId: jobId)
        _ = try? await fileSystem.removeItem(at: target, recursively: false)
        try await fileSystem.moveItem(at: spoolPath(jobId: jobId, attempt: attempt), to: target)
    }

    /// Moves a promoted image back to its attempt's spool file (its `complete` could not be recorded).
    func demote(jobId: String, attempt: Int) async {
        _ = try? await fileSystem.moveItem(at: imagePath(jobId: jobId), to: spoolPath(jobId: jobId, attempt: attempt))
    }

    /// Unlinks an attempt's spool file at once (inside the ledger's transaction: a system call, no wait).
    func removeSpoolNow(jobId: String, attempt: Int) {
        try? FileManager.default.removeItem(atPath: spoolPath(jobId: jobId, attempt: attempt).string)
    }

    /// Reads one chunk back from an attempt's spool file.
    func readChunk(jobId: String, attempt: Int, index: Int, chunkSize: Int, length: Int) async throws -> ByteBuffer {
        try await fileSystem.withFileHandle(forReadingAt: spoolPath(jobId: jobId, attempt: attempt)) { handle in
            try await handle.readChunk(fromAbsoluteOffset: Int64(index) * Int64(chunkSize), length: .bytes(Int64(length)))
        }
    }

    /// Zero-copy: the kernel sends the image file's pages; a broken connection fails the write.
    func sendImage(of job: JobRecord, range: Range<Int64>, on channel: any Channel, to writer: inout any ResponseBodyWriter) async throws {
        try await FileTransfer.send(path: imagePath(jobId: job.id).string, range: range, on: channel)
    }

    /// Nothing to do: every file is removed by the transition that ends its use.
    func sweep() async {}

    /// Whether an attempt's spool file is still there.
    func exists(jobId: String, attempt: Int) async -> Bool {
        (try? await fileSystem.info(forFileAt: spoolPath(jobId: jobId, attempt: attempt))) != nil
    }

    /// Removes one attempt's spool file.
    func removeSpool(jobId: String, attempt: Int) async {
        _ = try? await fileSystem.removeItem(at: spoolPath(jobId: jobId, attempt: attempt), recursively: false)
    }

    /// Removes every spool file of a job (all attempts).
    func removeSpool(jobId: String) async {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: spoolDirectory.string) else { return }
        for name in names where name.hasPrefix("\(jobId).") {
            _ = try? await fileSystem.removeItem(at: spoolDirectory.appending(name), recursively: false)
        }
    }

    /// The files on disk as (job id, attempt) for spool files and (job id, nil) for images; names that
    /// are not the spool's own are left alone.
    func files() -> [(jobId: String, attempt: Int?, path: FilePath)] {
        var found: [(String, Int?, FilePath)] = []
        for name in (try? FileManager.default.contentsOfDirectory(atPath: spoolDirectory.string)) ?? [] {
            let parts = name.split(separator: ".")
            guard parts.count == 3, parts[2] == "part", RandomToken.isWellFormed(String(parts[0])), let attempt = Int(parts[1]) else { continue }
            found.append((String(parts[0]), attempt, spoolDirectory.appending(name)))
        }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: imageDirectory.string)) ?? [] {
            let parts = name.split(separator: ".")
            guard parts.count == 2, parts[1] == "img", RandomToken.isWellFormed(String(parts[0])) else { continue }
            found.append((String(parts[0]), nil, imageDirectory.appending(name)))
        }
        return found
    }

    /// Removes a file `files()` listed.
    func remove(_ path: FilePath) async {
        _ = try? await fileSystem.removeItem(at: path, recursively: false)
    }

    /// Removes a job's image file.
    func removeImage(jobId: String) async {
        _ = try? await fileSystem.removeItem(at: imagePath(jobId: jobId), recursively: false)
    }

    /// Removes a job's image file without suspending (from a claim's release, which may run in a `deinit`).
    func removeImageNow(jobId: String) {
        try? FileManager.default.removeItem(atPath: imagePath(jobId: jobId).string)
    }

    /// Size of a job's image file, or nil when it is gone.
    func imageSize(jobId: String) async -> Int64? {
        (try? await fileSystem.info(forFileAt: imagePath(jobId: jobId)))??.size
    }
}
