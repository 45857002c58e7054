import HTTPTypes
import RelayProtocol

extension GatewayError {
    /// What a client is told when the job's state machine refused what its request asked for.
    init(_ refusal: JobStateMachine.Refusal) {
        switch refusal {
        case .finished(let state):
            self.init(.conflict, .jobFinished, "the job is already \(state.rawValue)")
        case .notRunning(let state):
            self.init(.conflict, .jobNotRunning, "the job is \(state.rawValue)")
        case .attemptOver:
            // A late upload of an attempt that was rolled back: its bytes went with it.
            self.init(.unauthorized, .invalidToken, "the attempt this token belongs to has ended", headers: [.wwwAuthenticate: "Bearer"])
        case .alreadyStarted:
            self.init(.conflict, .jobNotRunning, "the job's attempt has already started")
        case .chunkConflict:
            self.init(.conflict, .chunkConflict, "this chunk index is already stored with another digest; nothing was written")
        case .alreadyStored:
            self.init(.conflict, .chunkStored, "this chunk is already stored")
        case .shortChunkNotLast:
            self.init(.unprocessableContent, .shortChunk, "only the last chunk may be smaller than the cap")
        case .notReady(let state):
            switch state {
            case .queued, .running:
                self.init(.conflict, .imageNotReady, "the image is not ready yet (job is \(state.rawValue))", headers: [.retryAfter: "1"])
            case .done:
                self.init(.gone, .imageConsumed, "this image was already retrieved")
            case .expired:
                self.init(.gone, .imageExpired, "this image expired before it was retrieved")
            case .failed, .cancelled, .ready:
                self.init(.gone, .imageUnavailable, "the job \(state.rawValue); there is no image")
            }
        case .transferInProgress:
            self.init(.conflict, .imageInFlight, "another transfer of this image is in progress", headers: [.retryAfter: "1"])
        case .stillWatched, .leasedElsewhere, .notFinished, .notDue, .atConcurrencyLimit, .notThisDelivery:
            self.init(.conflict, .jobBusy, "the job is still in use")
        }
    }
}
