import Foundation
import Logging
import ServiceLifecycle

/// `serve --watch`: notices when a function's source files change, rebuilds the function and retires
/// its warm environments, so the next invocation runs the new code (SAM CLI users' long-standing wish,
/// aws-sam-cli#921).
///
/// It polls: every file under each function's folder, by modification time and size. A change is acted
/// on once two polls agree (an editor's save is often several writes). Build output and tool folders
/// (names starting with `.`, `__pycache__`, `node_modules`), `fixtures/` and the files the function's
/// `build` steps write into its folder are not sources; a change to `function.json` is reported, not
/// applied (the registry is read at start).
public struct FunctionWatcher: Service {
    private let runtime: LocalRuntime
    private let interval: Duration
    private let logger: Logger

    /// Watches every function of `runtime`'s registry that has a folder.
    public init(runtime: LocalRuntime, interval: Duration = .milliseconds(500), logger: Logger) {
        self.runtime = runtime
        self.interval = interval
        self.logger = logger
    }

    /// Polls until graceful shutdown.
    public func run() async throws {
        let functions = runtime.registry.functions.values.compactMap { function in function.directory.map { (function.name, $0) } }
            .sorted { $0.0 < $1.0 }
        var baselines = Dictionary(uniqueKeysWithValues: functions.map { ($0.0, SourceSnapshot(of: $0.1)) })
        var settling: [String: SourceSnapshot] = [:]
        logger.notice("watching \(functions.count) functions for source changes: \(functions.map(\.0).joined(separator: ", "))")
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await Task.sleep(for: interval)
            for (name, directory) in functions where !Task.isShuttingDownGracefully {
                let now = SourceSnapshot(of: directory)
                guard let baseline = baselines[name] else { continue }
                // What a build wrote into the folder (a marker, a log) is output, not an edit.
                let outputs = await runtime.buildOutputs(of: name)
                let changed = now.changes(since: baseline).filter { !outputs.contains($0) }
                guard !changed.isEmpty else {
                    baselines[name] = now
                    settling[name] = nil
                    continue
                }
                guard settling[name] == now else {
                    settling[name] = now  // still being written, perhaps: act when the next poll agrees
                    continue
                }
                settling[name] = nil
                if changed.contains("function.json") {
                    logger.warning("\(name): function.json changed; restart serve to apply it")
                }
                let sources = changed.filter { $0 != "function.json" }
                if sources.isEmpty {
                    baselines[name] = now
                    continue
                }
                logger.notice("\(name) changed (\(Self.list(sources))); rebuilding")
                let started = ContinuousClock.now
                do {
                    let (retired, stopped) = try await runtime.rebuild(name)
                    logger.notice(
                        "rebuilt \(name) in \(ContinuousClock.now - started); retired the warm environments of \(retired.joined(separator: ", ")) (\(stopped) idle stopped, busy ones stop when their invocation ends): the next invocation runs the new code"
                    )
                } catch {
                    logger.error("rebuilding \(name) failed; the previous build keeps serving until the next change: \(error)")
                }
                // What the build wrote is filtered as output; an edit made during the build is seen next poll.
                baselines[name] = now
            }
        }
    }

    private static func list(_ paths: [String]) -> String {
        paths.count <= 3 ? paths.joined(separator: ", ") : paths.prefix(3).joined(separator: ", ") + " and \(paths.count - 3) more"
    }
}
