/// Runs `body`, failing with a `TestFailure` once `timeout` has passed (the body is cancelled then).
public func withDeadline<T: Sendable>(
    _ timeout: Duration, _ what: String, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            throw TestFailure("timed out after \(timeout) waiting for \(what)")
        }
        return value
    }
}

/// Polls `condition` until it holds; fails with a `TestFailure` naming `what` after `timeout`.
public func eventually(
    _ what: String, within timeout: Duration = .seconds(15), every interval: Duration = .milliseconds(20),
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: interval)
    }
    if try await condition() { return }
    throw TestFailure("timed out after \(timeout) waiting for \(what)")
}
