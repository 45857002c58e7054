import Synchronization

/// One transfer's hold on an image: while it is held, other GETs of the key get 409 (on any instance)
/// and neither the janitor nor a cancel deletes the image under the transfer.
///
/// Ended by `release(acknowledged:)` with what the client acknowledged, or by `deinit` when the
/// response that carried it is dropped without its body ever running (Hummingbird runs a body only
/// after writing the head, which fails when the client has already reset): either way exactly once.
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

    /// Says the transfer is over (its body all sent, or its connection broken) before its end is
    /// recorded: a GET that comes meanwhile waits for the record rather than being told 409.
    func ending() {
        lifecycle.transferEnding(key: key)
    }

    /// Ends the transfer; `acknowledged` is the part of the image the client's TCP took (nil: none).
    func release(acknowledged: Range<Int64>?) async {
        guard !released.exchange(true, ordering: .acquiringAndReleasing) else { return }
        await lifecycle.endTransfer(key: key, jobId: jobId, acknowledged: acknowledged)
    }

    deinit {
        guard !released.exchange(true, ordering: .acquiringAndReleasing) else { return }
        lifecycle.dropTransfer(key: key, jobId: jobId)
    }
}
