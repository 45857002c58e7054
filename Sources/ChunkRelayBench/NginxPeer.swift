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

    /// Debian's nchan module (`libnginx-mod-nchan`); nil when it is not installed.
    static var nchanModule: String? {
        ["/usr/lib/nginx/modules/ngx_nchan_module.so", "/usr/local/lib/nginx/modules/ngx_nchan_module.so"]
            .first { FileManager.default.fileExists(atPath: $0) }
    }

    /// Starts nginx in the foreground with a configuration of its own (one worker, no access log). With
    /// `nchanModule`, it also broadcasts: `POST /pub` publishes one message to every `GET /sub`
    /// EventSource subscriber of the one channel (`X-EventSource-Event` names the event).
    static func start(executable: String, nchanModule: String? = nil, connections: Int = 1024) async throws -> NginxPeer {
        let prefix = FileManager.default.temporaryDirectory.appendingPathComponent("bench-nginx-\(UUID().uuidString)")
        let root = prefix.appendingPathComponent("root")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let port = try await freePort()
        // Twice the connections it is asked to hold, within this process's hard limit (nginx cannot raise
        // it without CAP_SYS_RESOURCE): a worker short of connections closes the newest ones unanswered.
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        let files = Int(min(UInt64(limit.rlim_max), UInt64(max(connections, 1024) * 2 + 100)))
        // Run as root, nginx would hand the worker to `nobody`, which cannot read the gateway's owner-only files.
        let user = geteuid() == 0 ? "user root;\n" : ""
        let configuration = """
            \(nchanModule.map { "load_module \($0);\n" } ?? "")\(user)worker_processes 1;
            worker_rlimit_nofile \(files);
            pid \(prefix.path)/nginx.pid;
            error_log stderr warn;
            events { worker_connections \(files - 100); }
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
                server {
                    listen 127.0.0.1:\(port);
                    root \(root.path);
                    # The ingest peer: chunks PUT as files, nothing checked (WebDAV, in nginx-light too).
                    location /dav/ { dav_methods PUT; create_full_put_path on; client_max_body_size 0; client_body_buffer_size 64k; }
                    \(nchanModule == nil ? "" : Self.nchanLocations)
                }
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

    /// One channel, `queue`: subscribers by EventSource, the publisher by POST; nothing kept for late
    /// subscribers, as the gateway keeps no backlog of queue moves either.
    private static let nchanLocations = """
        location = /sub { nchan_subscriber eventsource; nchan_channel_id queue; nchan_subscriber_first_message -1; }
                    location = /pub { nchan_publisher; nchan_channel_id queue; nchan_message_buffer_length 1; nchan_message_timeout 60s; }
        """

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
