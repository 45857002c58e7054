import Foundation
import Logging
import Subprocess

#if canImport(System)
import System
#else
import SystemPackage
#endif

/// Finds how to start a function, building it first when it has not been built, as `sam build` would:
/// a Swift function's product with SwiftPM (`swift run chunkrelay serve` builds only the CLI), any other
/// function with the `build` commands of its `function.json` (a Python virtual environment, say).
actor FunctionBuilder {
    private let packageRoot: URL?
    private let binDirectories: [URL]
    private let logger: Logger
    /// One resolution per function, shared by concurrent cold starts so a build never runs twice at once.
    private var resolutions: [String: Task<[String], any Error>] = [:]
    /// Per function, the files its `build` steps wrote into its folder (`serve --watch` does not take
    /// those for edits).
    private(set) var buildOutputs: [String: Set<String>] = [:]

    init(packageRoot: URL?, binDirectories: [URL], logger: Logger) {
        self.packageRoot = packageRoot
        self.binDirectories = binDirectories
        self.logger = logger
    }

    /// The command line that starts the function.
    func commandLine(for function: FunctionConfiguration) async throws(RuntimeError) -> [String] {
        let task: Task<[String], any Error>
        if let existing = resolutions[function.name] {
            task = existing
        } else {
            task = Task { try await self.resolve(function) }
            resolutions[function.name] = task
        }
        do {
            return try await task.value
        } catch {
            resolutions[function.name] = nil  // a failed build is tried again by the next invocation
            throw error as? RuntimeError ?? RuntimeError(.buildFailed, "\(error)")
        }
    }

    /// Builds `function` again even though it was built (its sources changed): cold starts from now on
    /// wait for this build, and get its command line.
    func rebuild(_ function: FunctionConfiguration) async throws(RuntimeError) {
        let previous = resolutions[function.name]
        let task = Task {
            // A build already running (a cold start's) finishes first: two builds never share a folder.
            _ = try? await previous?.value
            return try await self.resolve(function, force: true)
        }
        resolutions[function.name] = task
        do {
            _ = try await task.value
        } catch {
            // The previous build keeps serving (its executable is still there); a later change tries again.
            if resolutions[function.name] == task { resolutions[function.name] = previous }
            throw error as? RuntimeError ?? RuntimeError(.buildFailed, "\(error)")
        }
    }

    private func resolve(_ function: FunctionConfiguration, force: Bool = false) async throws(RuntimeError) -> [String] {
        if let archive = function.archive, let directory = function.directory {
            try ArchiveUnpacker(archive: archive, directory: directory, logger: logger).unpack(function: function.name, force: force)
        }
        if let steps = function.build, let directory = function.directory {
            let marker = directory.appendingPathComponent(function.buildCreates ?? ".built")
            if force || !FileManager.default.fileExists(atPath: marker.path) {
                logger.notice("function \(function.name) is \(force ? "rebuilt" : "not built"); running its build steps in \(directory.path)")
                let started = ContinuousClock.now
                let before = SourceSnapshot(of: directory)
                defer { buildOutputs[function.name, default: []].formUnion(SourceSnapshot(of: directory).changes(since: before)) }
                do {
                    for step in steps {
                        logger.notice("\(function.name): \(step.joined(separator: " "))")
                        try await Self.run(step, in: directory)
                    }
                } catch {
                    // The marker may come from an early step (`.venv/bin/python`): a build that failed later
                    // must not pass for done, or the next invocation would run a half-built function.
                    try? FileManager.default.removeItem(at: marker)
                    throw error
                }
                if function.buildCreates == nil { _ = FileManager.default.createFile(atPath: marker.path, contents: nil) }
                logger.notice("built \(function.name) in \(ContinuousClock.now - started)")
            }
        }
        if let command = function.command { return command }
        guard let product = function.swiftProduct else {
            throw RuntimeError(.invalidConfiguration, "\(function.name) has neither swiftProduct nor command")
        }
        let own = function.swiftPackage == nil || function.swiftPackage?.standardizedFileURL.path == packageRoot?.standardizedFileURL.path
        return [try await executable(product: product, package: own ? packageRoot : function.swiftPackage, searchBins: own, force: force).path]
    }

    /// `product`'s executable: found already built beside this one (for this project's own package), or
    /// built with `swift build` in `package` (a template's Swift function in a package of its own).
    private func executable(product: String, package: URL?, searchBins: Bool, force: Bool) async throws(RuntimeError) -> URL {
        for directory in binDirectories where !force && searchBins {
            let candidate = directory.appendingPathComponent(product)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        guard let packageRoot = package, FileManager.default.fileExists(atPath: packageRoot.appendingPathComponent("Package.swift").path) else {
            throw RuntimeError(.buildFailed, "executable \(product) not found in \(binDirectories.map(\.path)) and no package to build it from")
        }
        let configuration = binDirectories.first.map { $0.path.contains("/release") ? "release" : "debug" } ?? "debug"
        logger.notice("\(force ? "rebuilding \(product)" : "function product \(product) is not built; building it") with `swift build -c \(configuration) --product \(product)`")
        let started = ContinuousClock.now
        try await Self.swift(["build", "-c", configuration, "--product", product], in: packageRoot)
        let binPath = try await Self.swift(["build", "-c", configuration, "--show-bin-path"], in: packageRoot)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let url = URL(fileURLWithPath: binPath).appendingPathComponent(product)
        guard FileManager.default.isExecutableFile(atPath: url.path) else {
            throw RuntimeError(.buildFailed, "built \(product) but found no executable at \(url.path)")
        }
        logger.notice("built \(product) in \(ContinuousClock.now - started)")
        return url
    }

    @discardableResult
    private static func swift(_ arguments: [String], in directory: URL) async throws(RuntimeError) -> String {
        try await run(["swift"] + arguments, in: directory)
    }

    /// Runs a build command to completion; its output is returned, or its end quoted in the error.
    @discardableResult
    private static func run(_ arguments: [String], in directory: URL) async throws(RuntimeError) -> String {
        let result: ExecutionResult<[UInt8], SequenceOutput, CombinedErrorOutput>
        do {
            result = try await Subprocess.run(
                FunctionProcess.executable(arguments[0], in: directory), arguments: Arguments(Array(arguments.dropFirst())), workingDirectory: FilePath(directory.path),
                input: .none, output: .sequence, error: .combinedWithOutput
            ) { execution in
                // A build can print more than any fixed limit; the last megabyte is all an error quotes.
                var output: [UInt8] = []
                for try await buffer in execution.standardOutput {
                    buffer.withUnsafeBytes { output.append(contentsOf: $0) }
                    if output.count > 2 << 20 { output.removeFirst(output.count - (1 << 20)) }
                }
                return output
            }
        } catch {
            throw RuntimeError(.buildFailed, "could not run \(arguments.joined(separator: " ")): \(error)")
        }
        let text = String(decoding: result.closureResult, as: UTF8.self)
        guard result.terminationStatus.isSuccess else {
            // A full disk is the machine's state, not the function's fault: said first, so it is not
            // lost in the tail of a compiler's output.
            let full = text.contains("No space left on device") || text.contains("Disk quota exceeded")
            let cause = full ? " ran out of disk space in \(directory.path) (free some and invoke again)" : " failed"
            throw RuntimeError(.buildFailed, "\(arguments.joined(separator: " "))\(cause) (\(result.terminationStatus)):\n\(text.suffix(4000))")
        }
        return text
    }
}
