/// What one gateway instance tells the others (over PostgreSQL's NOTIFY): ids only, since every
/// instance reads state from the tables; a lost notice costs a late wake-up, never a wrong answer.
enum FeedNotice: Sendable, Hashable {
    /// Something about this job changed.
    case changed(String)
    /// The queue moved (a job started, left it or went back in at its front): places may have changed.
    case queue
    /// A job joined the queue or left the running ones: a dispatcher may start one, though nobody's place changed.
    case dispatch

    /// `instance|job:ID`, `instance|queue` or `instance|dispatch`.
    func payload(from instance: String) -> String {
        switch self {
        case .changed(let jobId): "\(instance)|job:\(jobId)"
        case .queue: "\(instance)|queue"
        case .dispatch: "\(instance)|dispatch"
        }
    }

    /// The notice in a payload, with the instance that sent it.
    init?(payload: String) {
        guard let bar = payload.firstIndex(of: "|") else { return nil }
        let body = payload[payload.index(after: bar)...]
        if body == "queue" {
            self = .queue
        } else if body == "dispatch" {
            self = .dispatch
        } else if body.hasPrefix("job:"), body.count > 4 {
            self = .changed(String(body.dropFirst(4)))
        } else {
            return nil
        }
    }

    /// The sending instance of a payload.
    static func sender(of payload: String) -> Substring {
        payload.prefix { $0 != "|" }
    }
}
