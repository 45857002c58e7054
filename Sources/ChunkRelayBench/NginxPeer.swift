import ChunkRelayServer
import Foundation
import NIOCore
import NIOPosix

/// nginx serving a folder on loopback with `sendfile on`: the peer the gateway's image downloads are
/// measured against, in the same run, by the same client, on the same file.
struct NginxPeer {
    let process: ChildProcess
    let root: URL
    let url: String
    private let prefix: URL

    /// Where Debian installs it; nil when it is not installed.
    static var executable: String? {
        ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Starts nginx in the foreground with a configuration of its own (one worker, no access log).
    static func start(executable: String) async throws -> NginxPeer {
        let prefix = FileManager.default.temporaryDirectory.appendingPathComponent("bench-nginx-\(UUID().uuidString)")
        let root = prefix.appendingPathComponent("root")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let port = try await freePort()
        // Run as root, nginx would hand the worker to `nobody`, which cannot read the gateway's owner-only files.
        let user = geteuid() == 0 ? "user root;\n" : ""
        let configuration = """
            \(user)worker_processes 1;
            pid \(prefix.path)/nginx.pid;
            error_log stderr warn;
            events { worker_connections 1024; }
            http {
                sendfile on;
                tcp_nopush on;
                access_log off;
                default_type application/octet-stream;
                client_body_temp_path \(prefix.path)/tmp;
                proxy_temp_path \(prefix.path)/tmp;
                fastcgi_temp_path \(prefix.path)/tmp;
                uwsgi_temp_path \(prefix.path)/tmp;
                scgi_temp_path \(prefix.path)/tmp;
                server { listen 127.0.0.1:\(port); root \(root.path); }
            }
            """
        let file = prefix.appendingPathComponent("nginx.conf")
        try configuration.write(to: file, atomically: true, encoding: .utf8)
        let process = try await ChildProcess.start(
            [executable, "-p", prefix.path, "-c", file.path, "-g", "daemon off;"], log: prefix.appendingPathComponent("nginx.log")
        )
        let peer = NginxPeer(process: process, root: root, url: "http://127.0.0.1:\(port)", prefix: prefix)
        // Listening once a connection is accepted.
        let deadline = ContinuousClock.now + .seconds(10)
        while true {
            if let channel = try? await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port).get() {
                try? await channel.close()
                return peer
            }
            guard process.isRunning, ContinuousClock.now < deadline else {
                await peer.stop()
                throw ExitMessage("nginx did not start:\n\(process.output)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// The worker process that serves the requests (the master only supervises).
    var workerPid: Int32 {
        let children = (try? String(contentsOfFile: "/proc/\(process.pid)/task/\(process.pid)/children", encoding: .utf8)) ?? ""
        return children.split(separator: " ").first.flatMap { Int32($0) } ?? process.pid
    }

    /// Stops nginx and removes its folder.
    func stop() async {
        // SIGTERM: the master stops its worker before it exits (killing only the master would leave the
        // worker running, adopted by init).
        let worker = workerPid
        process.signal(SIGTERM)
        let deadline = ContinuousClock.now + .seconds(5)
        while process.isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        process.signal(SIGKILL)
        if worker != process.pid { kill(worker, SIGKILL) }
        await process.waitForExit()
        try? FileManager.default.removeItem(at: prefix)
    }

    /// A port the kernel has just handed out and taken back (nginx cannot be told to pick one).
    private static func freePort() async throws -> Int {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress?.port ?? 0
        try await channel.close()
        return port
    }
}
