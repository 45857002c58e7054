import Foundation

/// How a handler-style function (`python3.x` `app.handler`, `nodejs20.x` `index.handler`) starts without
/// Docker: through a bootstrap this project ships, or AWS's runtime interface client where the function's
/// own environment has one. Shared by templates and by `function.json`s that name no `command`.
enum HandlerRuntime {
    /// The command line for `runtime`'s handler in `directory`; nil when the runtime has no bootstrap here.
    static func command(runtime: String, handler: String, in directory: URL) -> [String]? {
        if runtime.hasPrefix("python3") { return python(runtime: runtime, handler: handler, in: directory) }
        if runtime.hasPrefix("nodejs") { return ["node", RuntimeSupport.node.appendingPathComponent("bootstrap.mjs").path] }
        return nil
    }

    /// The function's own interpreter when it has a virtual environment; `awslambdaric` when that
    /// environment (or the code folder, as `sam build` vendors it) has it; else the shipped bootstrap, on
    /// the runtime's Python version when this machine has it.
    private static func python(runtime: String, handler: String, in directory: URL) -> [String] {
        let manager = FileManager.default
        let venv = directory.appendingPathComponent(".venv/bin/python")
        var interpreter = manager.isExecutableFile(atPath: venv.path) ? venv.path : "python3"
        if interpreter == "python3", onPath(runtime) { interpreter = runtime }
        var hasClient = manager.fileExists(atPath: directory.appendingPathComponent("awslambdaric").path)
        let lib = directory.appendingPathComponent(".venv/lib")
        for version in (try? manager.contentsOfDirectory(atPath: lib.path)) ?? [] {
            hasClient = hasClient || manager.fileExists(atPath: lib.appendingPathComponent("\(version)/site-packages/awslambdaric").path)
        }
        if hasClient { return [interpreter, "-m", "awslambdaric", handler] }
        return [interpreter, RuntimeSupport.python.appendingPathComponent("bootstrap.py").path]
    }

    private static func onPath(_ program: String) -> Bool {
        (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").contains { folder in
            FileManager.default.isExecutableFile(atPath: "\(folder)/\(program)")
        }
    }
}
