import Logging
import PostgresNIO
import ServiceLifecycle

/// Carries feed notices between gateway instances that share a PostgreSQL store: this instance's go
/// out with `NOTIFY` on the store's channel (one per schema), the others' come in on a connection that `LISTEN`s, and wake the
/// event streams and the dispatcher here. Notices carry ids only; after the link was down, every
/// subscriber and the dispatcher look at the tables again, so nothing depends on a notice arriving.
/// It also ends, in the ledger, the transfers this instance dropped before their body ran.
struct PostgresFeedBridge: Service {
    let notices: AsyncStream<FeedNotice>
    /// Jobs whose transfer this instance dropped before its body ran.
    let droppedTransfers: AsyncStream<String>
    /// The store (its `instance` names this instance in payloads too, so it ignores its own notices).
    let store: PostgresJobStore
    let lifecycle: JobLifecycle
    let admission: AdmissionQueue
    let logger: Logger

    private var feed: JobFeed { lifecycle.feed }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await send() }
                group.addTask { await listen() }
                group.addTask { await endDroppedTransfers() }
            }
        }
    }

    private func send() async {
        for await notice in notices {
            do {
                try await store.client.query("SELECT pg_notify(\(store.notifyChannel), \(notice.payload(from: store.instance)))", logger: logger)
            } catch {
                // The other instances read the tables after a missed notice (their next look, or a reconnect).
                if !Task.isCancelled { logger.warning("could not notify the other instances: \(PostgresURL.describe(error))") }
            }
        }
    }

    private func endDroppedTransfers() async {
        for await jobId in droppedTransfers {
            // One that cannot be recorded runs out at its `claim_until`.
            await lifecycle.recordTransferEnd(jobId: jobId, acknowledged: nil)
        }
    }

    private func listen() async {
        var pause = Duration.milliseconds(200)
        while !Task.isCancelled {
            do {
                let connection = try await PostgresConnection.connect(configuration: store.connectionConfiguration, id: 2, logger: logger)
                do {
                    try await connection.listen(on: store.notifyChannel) { incoming in
                        // Listening from now on: whatever happened before is in the tables; look again.
                        feed.wakeEveryone()
                        admission.wake()
                        pause = .milliseconds(200)
                        for try await notification in incoming {
                            guard FeedNotice.sender(of: notification.payload) != store.instance, let notice = FeedNotice(payload: notification.payload) else { continue }
                            feed.deliver(notice)
                            // A job queued, started or ended elsewhere may free a place under the shared limit.
                            admission.wake()
                            if case .changed(let jobId) = notice { await lifecycle.changedElsewhere(jobId) }
                        }
                    }
                } catch {
                    try? await connection.close()
                    throw error
                }
                try? await connection.close()
            } catch {
                guard !Task.isCancelled else { return }
                logger.warning("lost the link to the other instances (\(PostgresURL.describe(error))); reconnecting in \(pause)")
            }
            try? await Task.sleep(for: pause)
            pause = min(pause * 2, .seconds(5))
        }
    }
}
