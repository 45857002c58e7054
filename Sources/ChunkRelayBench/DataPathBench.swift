import ChunkRelayServer
import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import RelayClient
import RelayProtocol
import Synchronization

/// `chunkrelay bench data-path`: what relaying costs over moving the bytes.
///
/// Runs `serve` as its own process and, per chunk cap, has the `chaos` function upload an image:
/// ingest rate (job `running` → `ready`, from the job's own events) and the gateway's CPU per MiB; the
/// one-shot download against nginx (`sendfile on`) serving the same file to the same client (curl) in
/// the same run; stream against retrieve end to end through `RelayClient`. Then how fast a change in
/// the queue reaches 1,000 and 10,000 waiting clients. Medians of `--runs`; ratios pair by pair.
struct DataPathBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data-path", abstract: "Ingest, retrieval against nginx, stream against retrieve, queue push latency, peak RSS."
    )

    @Option(help: "Image size in bytes.") var bytes = 256 << 20
    @Option(help: "Runs per measure (medians are reported).") var runs = 3
    @Option(name: .customLong("caps"), help: "Chunk caps in bytes, comma-separated.") var caps = "262144,1048576,4194304"
    @Option(name: .customLong("waiting"), help: "Queue sizes for the push-latency measure, comma-separated (empty: skip).")
    var waiting = "1000,10000"
    @Option(help: "Where to write the SVG chart (empty: none).") var chart = "docs/bench-data-path.svg"
    @Option(help: "Folder of functions.") var functions = "functions"

    /// One cap's samples.
    struct CapResult {
        var cap: Int
        var ingest: [Double] = []  // MiB/s
        var cpuPerMiB: [Double] = []  // ms
        var machinePerMiB: [Double] = []  // ms, every process on the machine (the function too)
        var machineBusy: [Double] = []  // share of the machine's cores busy during ingest
        var download: [Double] = []  // MiB/s
        var nginx: [Double] = []  // MiB/s
        var downloadCPU: [Double] = []  // gateway ms per MiB served
        var nginxCPU: [Double] = []  // nginx worker ms per MiB served
        var downloadRatio: [Double] = []
        var streamWall: [Double] = []  // s
        var retrieveWall: [Double] = []  // s
        var wallRatio: [Double] = []
        var streamCPU: [Double] = []  // s of the machine's CPU, end to end
        var retrieveCPU: [Double] = []
        var peakRSS = 0
        var davIngest: [Double] = []  // MiB/s, nginx's WebDAV PUT of the same chunks
        var davCPU: [Double] = []  // ms of nginx's worker per MiB
    }

    func run() async throws {
        let capList = caps.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        let waitingList = waiting.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard let nginxPath = NginxPeer.executable else {
            throw ExitMessage("nginx is the peer this benchmark compares against; install it with `apt-get install nginx-light` (or nginx)")
        }
        let nginx = try await NginxPeer.start(executable: nginxPath)
        do {
            try await measure(nginx: nginx, caps: capList, waiting: waitingList)
        } catch {
            await nginx.stop()
            throw error
        }
        await nginx.stop()
    }

    private func measure(nginx: NginxPeer, caps capList: [Int], waiting waitingList: [Int]) async throws {
        let mib = Double(bytes) / 1_048_576
        print("image \(bytes) B (\(String(format: "%.0f", mib)) MiB), \(runs) runs per measure, nginx \(nginx.url)")
        // The hash floor: one SHA-256 pass over a MiB on this CPU, as OpenSSL does it.
        let hashFloor = try await Self.opensslSHA256()
        print(hashFloor.map { String(format: "openssl speed sha256: %.2f ms per MiB", $0) } ?? "openssl is not installed: no hash floor")

        var results: [CapResult] = []
        for cap in capList {
            var result = CapResult(cap: cap)
            try await BenchServer.with(functions: functions, arguments: ["--chunk-size", String(cap), "--max-concurrency", "1"]) { server in
                let client = RelayClient(baseURL: server.gatewayURL)
                // A first job builds and warms the function; it is not counted.
                _ = try await uploadAndWait(client, bytes: 1 << 20)
                for run in 1...runs {
                    let cpuBefore = server.cpuTime
                    let machineBefore = BenchServer.machineCPU()
                    let upload = try await uploadAndWait(client, bytes: bytes)
                    let cpu = (server.cpuTime - cpuBefore).inSeconds * 1000
                    let machine = BenchServer.machineCPU()
                    let machineBusy = (machine.busy - machineBefore.busy).inSeconds
                    result.ingest.append(mib / upload.ingestSeconds)
                    result.cpuPerMiB.append(cpu / mib)
                    result.machinePerMiB.append(machineBusy * 1000 / mib)
                    result.machineBusy.append(machineBusy / max((machine.all - machineBefore.all).inSeconds, 0.001))

                    // The same file, served by nginx (a hard link: the gateway's consume removes only its own name).
                    let served = nginx.root.appendingPathComponent("\(upload.jobId).img")
                    try FileManager.default.linkItem(
                        at: server.stateDirectory.appendingPathComponent("images/\(upload.jobId).img"), to: served
                    )
                    defer { try? FileManager.default.removeItem(at: served) }
                    let gatewayCPU = server.cpuTime
                    let gateway = try await Self.curlDownload("\(server.gatewayURL)\(upload.imagePath)", expecting: bytes)
                    result.downloadCPU.append((server.cpuTime - gatewayCPU).inSeconds * 1000 / mib)
                    let worker = nginx.workerPid
                    let nginxCPU = BenchServer.cpuTime(of: worker)
                    let peer = try await Self.curlDownload("\(nginx.url)/\(upload.jobId).img", expecting: bytes)
                    result.nginxCPU.append((BenchServer.cpuTime(of: worker) - nginxCPU).inSeconds * 1000 / mib)
                    result.download.append(mib / gateway)
                    result.nginx.append(mib / peer)
                    result.downloadRatio.append(peer / gateway)  // times, so this is download speed over nginx's

                    let streamBefore = BenchServer.machineCPU().busy
                    let streamWall = try await Self.endToEnd(client, bytes: bytes, delivery: .stream)
                    let retrieveBefore = BenchServer.machineCPU().busy
                    let retrieveWall = try await Self.endToEnd(client, bytes: bytes, delivery: .retrieve)
                    result.streamCPU.append((retrieveBefore - streamBefore).inSeconds)
                    result.retrieveCPU.append((BenchServer.machineCPU().busy - retrieveBefore).inSeconds)
                    result.streamWall.append(streamWall)
                    result.retrieveWall.append(retrieveWall)
                    result.wallRatio.append(streamWall / retrieveWall)

                    let davWorker = nginx.workerPid
                    let davCPU = BenchServer.cpuTime(of: davWorker)
                    let davSeconds = try await Self.davUpload(nginx.url, bytes: bytes, cap: cap)
                    result.davIngest.append(mib / davSeconds)
                    result.davCPU.append((BenchServer.cpuTime(of: davWorker) - davCPU).inSeconds * 1000 / mib)
                    print(
                        String(
                            format: "cap %7d run %d: ingest %6.0f MiB/s (%.2f ms CPU/MiB, machine %.0f %% busy), download %6.0f vs nginx %6.0f MiB/s, stream %.2f s / retrieve %.2f s",
                            cap, run, mib / upload.ingestSeconds, cpu / mib, (result.machineBusy.last ?? 0) * 100, mib / gateway, mib / peer, streamWall, retrieveWall)
                    )
                }
                result.peakRSS = server.memory.hwm
            }
            results.append(result)
        }

        var queue: [QueueResult] = []
        for count in waitingList {
            var measured = try await queueLatency(waiting: count)
            // The peer: nginx + nchan broadcasting one message to as many EventSource subscribers, timed
            // by the same clients in the same run (skipped, and said so, when the module is missing).
            if let executable = NginxPeer.executable, let module = NginxPeer.nchanModule {
                measured.nchan = try await nchanLatency(executable: executable, module: module, waiting: count)
            }
            queue.append(measured)
            print(String(
                format: "%d waiting clients: p50 %.1f ms, p99 %.1f ms; nchan p50 %.1f ms, p99 %.1f ms", count, measured.p50, measured.p99,
                measured.nchan?.p50 ?? .nan, measured.nchan?.p99 ?? .nan))
        }
        if !waitingList.isEmpty, NginxPeer.nchanModule == nil {
            print("nginx's nchan module is not installed (apt-get install libnginx-mod-nchan): the push peer is left out")
        }

        printTable(results: results, queue: queue, hashFloor: hashFloor)
        if !chart.isEmpty {
            try BenchChart.throughput(results: results, imageMiB: mib).write(toFile: chart, atomically: true, encoding: .utf8)
            print("\nchart: \(chart)")
        }
    }

    /// Push latency for one queue size, and what a move in the queue cost in CPU.
    struct QueueResult {
        var waiting: Int
        var p50: Double  // ms
        var p99: Double
        var gatewayCPU: Double  // ms per move
        var clientsCPU: Double  // ms per move, this process's watchers
        var peakRSS: Int
        /// The gateway's resident memory for each waiting stream: (RSS with the streams open − before) / streams.
        var bytesPerStream: Double
        /// The same clients on nginx + nchan.
        var nchan: PeerResult?
    }

    /// nchan's push latency and its worker's memory per subscriber.
    struct PeerResult {
        var p50: Double
        var p99: Double
        var bytesPerStream: Double
    }

    /// What one retrieve-mode upload took.
    struct Upload {
        var jobId: String
        var imagePath: String
        var ingestSeconds: Double
    }

    /// Creates a retrieve job uploading `bytes` and follows its events to `ready`; ingest is `started` → `ready`.
    private func uploadAndWait(_ client: RelayClient, bytes: Int) async throws -> Upload {
        let created = try await client.createJob(Self.chaosUpload(bytes: bytes, delivery: .retrieve))
        let times = Mutex<(started: ContinuousClock.Instant?, ready: ContinuousClock.Instant?)>((nil, nil))
        let status = try await client.waitUntilReady(created.id) { event in
            let now = ContinuousClock.now
            switch event {
            case .started: times.withLock { $0.started = now }
            case .ready: times.withLock { $0.ready = now }
            default: break
            }
        }
        let (started, ready) = times.withLock { $0 }
        guard let started, let ready, let image = created.image ?? status.image else {
            throw ExitMessage("job \(created.id) did not become ready (\(status.state))")
        }
        return Upload(jobId: created.id, imagePath: image, ingestSeconds: (ready - started).inSeconds)
    }

    static func chaosUpload(bytes: Int, delivery: DeliveryMode) -> CreateJobRequest {
        CreateJobRequest(function: "chaos", params: ["mode": .string("upload"), "bytes": .number(Double(bytes))], delivery: delivery)
    }

    /// Seconds curl took to download `url` to /dev/null (its own `time_total`, so process start is not counted).
    static func curlDownload(_ url: String, expecting bytes: Int) async throws -> Double {
        let (status, output) = try await ChildProcess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{time_total}", url])
        let fields = output.split(separator: " ")
        guard status == 0, fields.count == 3, fields[0] == "200", Int(fields[1]) == bytes, let seconds = Double(fields[2]) else {
            throw ExitMessage("download of \(url) failed: curl exit \(status): \(output)")
        }
        return seconds
    }

    /// Wall time of `RelayClient.generate` (create, follow, receive, verify, write to disk) by one delivery mode.
    static func endToEnd(_ client: RelayClient, bytes: Int, delivery: DeliveryMode) async throws -> Double {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("bench-\(UUID().uuidString).img")
        defer { try? FileManager.default.removeItem(at: file) }
        let started = ContinuousClock.now
        let image = try await client.generate(chaosUpload(bytes: bytes, delivery: delivery), to: file)
        let elapsed = ContinuousClock.now - started
        guard image.bytes == bytes else { throw ExitMessage("\(delivery) delivered \(image.bytes) bytes, not \(bytes)") }
        return elapsed.inSeconds
    }

    /// `waiting` clients each watch a queued job; the running job is cancelled a few times and each
    /// waiting client's next `queued` event is timed from just before the DELETE.
    private func queueLatency(waiting: Int) async throws -> QueueResult {
        let rounds = max(runs, 3)
        let arguments = [
            "--max-concurrency", "1", "--max-queue", String(waiting + rounds + 10), "--max-connections", String(waiting + rounds + 200),
        ]
        return try await BenchServer.with(functions: functions, arguments: arguments) { server in
            let client = RelayClient(baseURL: server.gatewayURL)
            let sleeper = CreateJobRequest(function: "chaos", params: ["mode": .string("sleep"), "seconds": .number(3600)])
            let running = try await client.createJob(sleeper)
            // Created a few at a time; the first queued job is the one that starts after each cancel.
            var queued: [String] = Array(repeating: "", count: waiting + rounds)
            try await withThrowingTaskGroup(of: (Int, String).self) { group in
                var next = 0
                func add(_ group: inout ThrowingTaskGroup<(Int, String), any Error>) {
                    let index = next
                    next += 1
                    group.addTask { (index, try await client.createJob(sleeper).id) }
                }
                while next < min(16, queued.count) { add(&group) }
                while let (index, id) = try await group.next() {
                    queued[index] = id
                    if next < queued.count { add(&group) }
                }
            }
            // Jobs were created concurrently, so their queue order is not the array's: follow the ledger's.
            let url = URL(string: server.gatewayURL)!
            let before = server.memory.rss
            let watchers = try await QueueWatchers.connect(host: url.host ?? "127.0.0.1", port: url.port ?? 80, paths: queued.map { "/v1/jobs/\($0)/events" })
            let bytesPerStream = Double(server.memory.rss - before) / Double(queued.count)
            var samples: [Double] = []
            var gatewayCPU: [Double] = []
            var clientsCPU: [Double] = []
            var current = running.id
            for _ in 0..<rounds {
                let before = watchers.counts
                let (gatewayBefore, clientsBefore) = (server.cpuTime, BenchServer.cpuTime(of: getpid()))
                let start = ContinuousClock.now
                _ = try await client.cancel(current)
                let latencies = try await watchers.latencies(since: start, countsBefore: before, within: .seconds(120))
                // CPU from the DELETE to the last client's event: what one move in the queue costs each side.
                gatewayCPU.append((server.cpuTime - gatewayBefore).inSeconds * 1000)
                clientsCPU.append((BenchServer.cpuTime(of: getpid()) - clientsBefore).inSeconds * 1000)
                samples += latencies.map { ($0).inSeconds * 1000 }
                // The job that started in its place is the next one to cancel.
                guard let started = try await Self.runningJob(client, among: queued) else { throw ExitMessage("no job started after the cancel") }
                current = started
            }
            await watchers.close()
            samples.sort()
            return QueueResult(
                waiting: waiting, p50: samples[samples.count / 2], p99: samples[min(samples.count - 1, samples.count * 99 / 100)],
                gatewayCPU: Self.median(gatewayCPU), clientsCPU: Self.median(clientsCPU), peakRSS: server.memory.hwm,
                bytesPerStream: bytesPerStream
            )
        }
    }

    /// The same measure on nginx + nchan: `waiting` EventSource subscribers of one channel, one message
    /// published per round (`X-EventSource-Event: queued`), each subscriber's arrival timed from just
    /// before the publish.
    private func nchanLatency(executable: String, module: String, waiting: Int) async throws -> PeerResult {
        let rounds = max(runs, 3)
        let peer = try await NginxPeer.start(executable: executable, nchanModule: module, connections: waiting + 64)
        do {
            func publish(_ position: Int) async throws {
                var request = HTTPClientRequest(url: "\(peer.url)/pub")
                request.method = .POST
                request.headers.add(name: "X-EventSource-Event", value: "queued")
                request.headers.add(name: "Content-Type", value: "application/json")
                request.body = .bytes(ByteBuffer(string: #"{"position":\#(position)}"#))
                let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
                _ = try await response.body.collect(upTo: 1 << 16)
                guard (200..<300).contains(Int(response.status.code)) else { throw ExitMessage("nchan refused the publish: \(response.status)") }
            }
            // Each subscriber's first event is the newest message, as a gateway stream's is its position.
            try await publish(0)
            let worker = peer.workerPid
            let before = BenchServer.memory(of: worker).rss
            let url = URL(string: peer.url)!
            let watchers = try await QueueWatchers.connect(host: "127.0.0.1", port: url.port ?? 80, paths: Array(repeating: "/sub", count: waiting))
            let bytesPerStream = Double(BenchServer.memory(of: worker).rss - before) / Double(waiting)
            var samples: [Double] = []
            for round in 1...rounds {
                let counts = watchers.counts
                let start = ContinuousClock.now
                try await publish(round)
                samples += try await watchers.latencies(since: start, countsBefore: counts, within: .seconds(120)).map { $0.inSeconds * 1000 }
            }
            await watchers.close()
            await peer.stop()
            samples.sort()
            return PeerResult(p50: samples[samples.count / 2], p99: samples[min(samples.count - 1, samples.count * 99 / 100)], bytesPerStream: bytesPerStream)
        } catch {
            await peer.stop()
            throw error
        }
    }

    /// The job among `ids` that is running now (the queue starts the next one right after a cancel).
    private static func runningJob(_ client: RelayClient, among ids: [String]) async throws -> String? {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            for id in ids.prefix(64) where try await client.job(id).state == .running { return id }
            try await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    /// The middle of the runs' samples (0 for none).
    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
    }

    /// PUTs `bytes` to nginx's WebDAV location in `cap`-sized chunks, four at a time (as FunctionKit's
    /// uploader sends them); returns the seconds it took.
    static func davUpload(_ base: String, bytes: Int, cap: Int) async throws -> Double {
        let chunk = ByteBuffer(bytes: (0..<cap).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        let count = (bytes + cap - 1) / cap
        let run = UUID().uuidString
        let started = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = 0
            func add(_ group: inout ThrowingTaskGroup<Void, any Error>) {
                let index = next
                next += 1
                group.addTask {
                    var request = HTTPClientRequest(url: "\(base)/dav/\(run)/\(index)")
                    request.method = .PUT
                    request.body = .bytes(chunk)
                    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
                    _ = try await response.body.collect(upTo: 1 << 16)
                    guard (200..<300).contains(Int(response.status.code)) else { throw ExitMessage("nginx refused a PUT: \(response.status)") }
                }
            }
            while next < min(4, count) { add(&group) }
            while try await group.next() != nil {
                if next < count { add(&group) }
            }
        }
        return (ContinuousClock.now - started).inSeconds
    }

    /// `openssl speed -bytes 1048576 sha256`: milliseconds of one core per MiB hashed; nil without openssl.
    static func opensslSHA256() async throws -> Double? {
        guard let result = try? await ChildProcess.run(["openssl", "speed", "-seconds", "2", "-bytes", "1048576", "sha256"]), result.status == 0,
            let line = result.output.split(separator: "\n").last(where: { $0.hasPrefix("sha256") }),
            let field = line.split(separator: " ").last, field.hasSuffix("k"), let kilobytes = Double(field.dropLast())
        else { return nil }
        return 1_048_576 / (kilobytes * 1000) * 1000
    }

    private func printTable(results: [CapResult], queue: [QueueResult], hashFloor: Double?) {
        let median = Self.median
        print("\n| cap | ingest MiB/s | nginx PUT MiB/s | ingest / nginx PUT | gateway CPU ms/MiB | nginx PUT CPU ms/MiB | openssl sha256 ms/MiB | gateway CPU / sha256 |")
        print("|---|---|---|---|---|---|---|---|")
        for result in results {
            let floor = hashFloor.map { String(format: "%.2f | %.1f×", $0, median(result.cpuPerMiB) / $0) } ?? "— | —"
            print(String(
                format: "| %@ | %.0f | %.0f | %.2f× | %.2f | %.2f | %@ |", Self.capName(result.cap), median(result.ingest), median(result.davIngest),
                median(result.ingest) / max(median(result.davIngest), 0.001), median(result.cpuPerMiB), median(result.davCPU), floor))
        }
        print("\n| cap | ingest MiB/s | gateway CPU ms/MiB | machine CPU ms/MiB (busy) | download MiB/s | nginx MiB/s | download / nginx | CPU ms/MiB served, gateway / nginx | stream s | retrieve s | stream/retrieve | machine CPU s, stream / retrieve | peak RSS |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for result in results {
            let figures = String(
                format: "%.0f | %.2f | %.2f (%.0f %%) | %.0f | %.0f | %.2f× | %.2f / %.2f | %.2f | %.2f | %.2f | %.2f / %.2f",
                median(result.ingest), median(result.cpuPerMiB), median(result.machinePerMiB), median(result.machineBusy) * 100,
                median(result.download), median(result.nginx),
                median(result.downloadRatio), median(result.downloadCPU), median(result.nginxCPU),
                median(result.streamWall), median(result.retrieveWall), median(result.wallRatio),
                median(result.streamCPU), median(result.retrieveCPU))
            print("| \(Self.capName(result.cap)) | \(figures) | \(BenchServer.mib(result.peakRSS)) |")
        }
        if !queue.isEmpty {
            print("\n| waiting clients | push p50 | push p99 | nchan p50 | nchan p99 | p99 / nchan | CPU per move, gateway / clients | memory per stream, gateway / nchan | peak RSS |")
            print("|---|---|---|---|---|---|---|---|---|")
            for row in queue {
                let peer = row.nchan.map {
                    String(format: "%.1f ms | %.1f ms | %.2f×", $0.p50, $0.p99, row.p99 / $0.p99)
                } ?? "— | — | —"
                let memory = String(format: "%.1f / %@ KiB", row.bytesPerStream / 1024, row.nchan.map { String(format: "%.1f", $0.bytesPerStream / 1024) } ?? "—")
                let figures = String(format: "%.1f ms | %.1f ms", row.p50, row.p99)
                print("| \(row.waiting) | \(figures) | \(peer) | \(String(format: "%.0f / %.0f ms", row.gatewayCPU, row.clientsCPU)) | \(memory) | \(BenchServer.mib(row.peakRSS)) |")
            }
        }
    }

    static func capName(_ cap: Int) -> String {
        cap >= 1 << 20 && cap % (1 << 20) == 0 ? "\(cap >> 20) MiB" : "\(cap >> 10) KiB"
    }
}
