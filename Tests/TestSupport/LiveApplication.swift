import Hummingbird
import Logging
import NIOCore
import RelayProtocol
import ServiceLifecycle
import Synchronization

/// Runs a Hummingbird application and its services on a real socket for `body` (given the port), then
/// stops them gracefully. HummingbirdTesting's live mode waits for the port with no way out, so a
/// service that failed before the server listened hung the whole test run with no socket open; here
/// that failure is thrown.
///
/// `makeApplication` builds the application with the `onServerRunning` it is given. `before` and
/// `after` run beside it in that order, as `serve` runs them (stopped in reverse: `after` first). A
/// part that fails or ends early stops the rest gracefully instead of cancelling them: a cancelled
/// server drops the connections it accepted but had not begun to serve, and NIO traps on their
/// unfinished writers (swift-nio #2813); what failed is still thrown.
public func withLiveApplication<App: ApplicationProtocol, Value: Sendable>(
    logger: Logger, before: [any Service] = [], after: [any Service] = [],
    _ makeApplication: (@escaping @Sendable (any Channel) async -> Void) -> App, _ body: (Int) async throws -> Value
) async throws -> Value {
    let port = Latch<Int?>()
    let application = makeApplication { channel in port.set(channel.localAddress?.port) }
    let services = ServiceGroup(
        configuration: .init(
            services: (before + [application] + after).map {
                .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup)
            },
            logger: logger))
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
            defer { port.set(nil) }
            try await services.run()
        }
        guard let bound = await port.wait(), let listening = bound else {
            try await group.waitForAll()  // throws what stopped the services
            throw TestFailure("the application's services ended before its server listened")
        }
        let value: Value
        do {
            value = try await body(listening)
        } catch {
            // Waited for here: a task group left by a throw cancels its tasks, and the server with them.
            await services.triggerGracefulShutdown()
            try? await group.waitForAll()
            throw error
        }
        await services.triggerGracefulShutdown()
        try await group.waitForAll()
        return value
    }
}
