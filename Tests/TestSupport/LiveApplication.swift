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
/// `makeApplication` builds the application with the `onServerRunning` it is given.
public func withLiveApplication<App: ApplicationProtocol, Value: Sendable>(
    logger: Logger, _ makeApplication: (@escaping @Sendable (any Channel) async -> Void) -> App, _ body: (Int) async throws -> Value
) async throws -> Value {
    let port = Latch<Int?>()
    let application = makeApplication { channel in port.set(channel.localAddress?.port) }
    let services = ServiceGroup(configuration: .init(services: [application], logger: logger))
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
            await services.triggerGracefulShutdown()
            throw error
        }
        await services.triggerGracefulShutdown()
        try await group.waitForAll()
        return value
    }
}
