import Crypto
import NIOCore
import RelayProtocol
import Synchronization

/// The whole image's SHA-256 of one attempt, computed while its chunks are stored: a chunk that
/// arrives in order is hashed from the buffer it came in, so `complete` does not read the image back.
///
/// Chunks that arrive ahead of a gap wait here, up to `holdLimit` bytes, until the gap is filled;
/// past that they are left to `complete`, which reads back from the spool only what was not hashed.
final class AttemptDigest: Sendable {
    /// What `complete` continues from.
    struct Progress {
        var hasher: SHA256
        /// Chunks `0..<hashedChunks` are in `hasher`.
        var hashedChunks: Int
        /// Later chunks still held in memory, by index.
        var held: [Int: ByteBuffer]
    }

    private struct State {
        var hasher = SHA256()
        var next = 0
        var held: [Int: ByteBuffer] = [:]
        var heldBytes = 0
    }

    let attempt: Int
    private let holdLimit: Int
    private let state = Mutex(State())

    init(attempt: Int, holdLimit: Int) {
        self.attempt = attempt
        self.holdLimit = holdLimit
    }

    /// A chunk was verified, written and recorded (once per index: duplicates are not passed on).
    func stored(_ chunk: ByteBuffer, index: Int) {
        state.withLock { state in
            if index == state.next {
                chunk.withUnsafeReadableBytes { state.hasher.update(bufferPointer: $0) }
                state.next += 1
                while let following = state.held.removeValue(forKey: state.next) {
                    following.withUnsafeReadableBytes { state.hasher.update(bufferPointer: $0) }
                    state.heldBytes -= following.readableBytes
                    state.next += 1
                }
            } else if index > state.next, state.heldBytes + chunk.readableBytes <= holdLimit {
                state.held[index] = chunk
                state.heldBytes += chunk.readableBytes
            }
        }
    }

    /// Takes what has been hashed so far (the digest is finished by `complete`).
    func progress() -> Progress {
        state.withLock { Progress(hasher: $0.hasher, hashedChunks: $0.next, held: $0.held) }
    }
}
