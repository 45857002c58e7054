import Synchronization

/// One transfer's hold on an image key: while it is held, other GETs of the key get 409 and neither
/// the janitor nor a cancel deletes the file under the transfer.
///
/// Released by `release()`, or by `deinit` when the response that carried it is dropped without its
/// body ever running (Hummingbird runs a body only after writing the head, which fails when the client
/// has already reset): either way exactly once.
final class ImageClaim: Sendable {
    let key: String
    let jobId: String
    private let lifecycle: JobLifecycle
    private let released = Atomic<Bool>(false)

    init(key: String, jobId: String, lifecycle: JobLifecycle) {
        self.key = key
        self.jobId = jobId
        self.lifecycle = lifecycle
    }

    /// Lets the key go (idempotent).
    func release() {
        guard !released.exchange(true, ordering: .acquiringAndReleasing) else { return }
        lifecycle.releaseClaim(key: key, jobId: jobId)
    }

    deinit { release() }
}
