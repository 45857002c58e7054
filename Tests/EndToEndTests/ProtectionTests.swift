import Foundation
import Gateway
import TestSupport
import Testing

@testable import ChunkRelayBench
@testable import chunkrelay

extension EndToEnd {
    /// Abuse from real sockets (a Python client): idle and trickling connections, a stalled body,
    /// oversized and malformed heads, more connections than allowed, a flood of jobs.
    @Suite(.timeLimit(.minutes(10))) struct ProtectionTests {
        static let script = #"""
        import json, socket, sys, time, urllib.request, urllib.error
        base = sys.argv[1]
        host, port = base.split("//")[1].split(":")
        port = int(port)
        out = {}
        def connect():
            return socket.create_connection((host, port))
        def answer(sock, timeout=5):
            sock.settimeout(timeout)
            data = b""
            try:
                while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < int(
                        [l.split(b":")[1] for l in data.split(b"\r\n") if l.lower().startswith(b"content-length:")][0] or 0):
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except (socket.timeout, IndexError, ValueError):
                pass
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode(errors="replace").split("\r\n")
            status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else 0
            headers = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
            return status, headers, body
        def closed_within(sock, seconds):
            sock.settimeout(seconds)
            started = time.monotonic()
            try:
                while True:
                    if sock.recv(65536) == b"":
                        return time.monotonic() - started
            except (socket.timeout, ConnectionResetError, BrokenPipeError):
                return None if isinstance(sys.exc_info()[1], socket.timeout) else time.monotonic() - started
        def request(method, path, body=None):
            req = urllib.request.Request(base + path, data=body, method=method, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    return r.status, dict(r.headers), r.read()
            except urllib.error.HTTPError as e:
                return e.code, dict(e.headers), e.read()

        # 300 idle connections, a third of them trickling a request head (slowloris).
        idle = [connect() for _ in range(300)]
        for sock in idle[:100]:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        def still_open(sock):
            sock.setblocking(False)
            try:
                return sock.recv(1) != b""
            except BlockingIOError:
                return True
            except OSError:
                return False
            finally:
                sock.setblocking(True)
        status, _, body = request("GET", "/healthz")
        # Answered while every trickling connection was still open: served beside them, not after they were cut off.
        out["healthzWhileIdle"] = [status, all(still_open(sock) for sock in idle[:100])]
        started = time.monotonic()
        status, _, body = request("POST", "/v1/jobs", json.dumps({"function": "chaos", "params": {"mode": "echo"}, "delivery": "stream"}).encode())
        job = json.loads(body)
        out["jobWhileIdle"] = status
        for _ in range(100):
            status, _, body = request("GET", "/v1/jobs/" + job["id"])
            if json.loads(body)["state"] not in ("queued", "running"):
                break
            time.sleep(0.05)
        out["jobStateWhileIdle"] = json.loads(body)["state"]

        # Beyond the connection limit (400): a request gets 503 with Retry-After and a JSON error.
        # A probe inside the limit watches the gauge until the server has counted every one of them.
        # 410 fresh connections, so the limit is passed whatever the idle timeout has closed meanwhile
        # (on a loaded machine the 300 above can reach it before this point).
        probe = connect()
        extra = [connect() for _ in range(410)]
        counted, deadline = 0, time.monotonic() + 5
        while counted < 1 + len(extra) and time.monotonic() < deadline:
            probe.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            _, _, metrics = answer(probe)
            counted = int(([l.split()[1] for l in metrics.decode().splitlines() if l.startswith("chunkrelay_open_connections ")] or ["0"])[0])
        out["counted"] = counted
        extra[-1].sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = answer(extra[-1])
        out["overLimit"] = [status, headers.get("retry-after"), json.loads(body or b"{}").get("error", {}).get("code")]
        for sock in extra + [probe]:
            sock.close()

        # Idle and trickling connections are closed after the idle timeout (4 s here).
        out["idleClosedAfter"] = closed_within(idle[200], 6)
        out["slowlorisClosedAfter"] = closed_within(idle[0], 6)
        open_ones = list(range(len(idle)))
        deadline = time.monotonic() + 5
        while open_ones and time.monotonic() < deadline:
            remaining = []
            for index in open_ones:
                idle[index].setblocking(False)
                try:
                    if idle[index].recv(1) != b"":
                        remaining.append(index)
                except BlockingIOError:
                    remaining.append(index)
                except OSError:
                    pass
            open_ones = remaining
            time.sleep(0.1)
        out["idleStillOpen"] = open_ones

        # A body that stops arriving is cut off after the body timeout (2 s here); others are unaffected.
        stalled = connect()
        stalled.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"func")
        out["stalledClosedAfter"] = closed_within(stalled, 6)

        # Heads too large or not HTTP: a JSON error, then the connection closes.
        sock = connect()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
        status, _, body = answer(sock)
        out["bigHead"] = [status, json.loads(body or b"{}").get("error", {}).get("code")]
        sock = connect()
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        status, _, body = answer(sock)
        out["garbage"] = [status, json.loads(body or b"{}").get("error", {}).get("code")]

        # A flood of jobs: beyond the queue length (2 here, 1 running) a job gets 429 queue_full.
        codes = []
        for _ in range(5):
            status, headers, body = request("POST", "/v1/jobs", json.dumps({"function": "chaos", "params": {"mode": "sleep", "seconds": 3}, "delivery": "retrieve"}).encode())
            codes.append([status, headers.get("Retry-After"), json.loads(body).get("error", {}).get("code")])
        out["flood"] = codes
        status, _, _ = request("GET", "/healthz")
        out["healthzAfter"] = status
        print(json.dumps(out))
        """#

        @Test func abusiveClientsAreCutOffAndOthersStillServed() async throws {
            try await withChunkRelay(maxConcurrency: 1, configure: { configuration in
                configuration.gateway.connections.maxConnections = 400
                // Long enough that the 300 idle connections are still open when the limit is checked (at 2 s
                // they were once closed under CI's load before the check ran); short enough to watch it work.
                configuration.gateway.connections.idleTimeout = .seconds(4)
                configuration.gateway.connections.bodyReadTimeout = .seconds(2)
                configuration.gateway.maxQueueLength = 2
            }) { gateway, _ in
                let result = try await run(["python3", "-c", Self.script, gateway])
                #expect(result.status == 0, "\(result.output)")
                let lastLine = result.output.split(separator: "\n").last.map(String.init) ?? ""
                let out = try #require(try JSONSerialization.jsonObject(with: Data(lastLine.utf8)) as? [String: Any], "\(result.output)")
                let healthz = out["healthzWhileIdle"] as? [Any]
                #expect(healthz?.first as? Int == 200)
                #expect(healthz?.last as? Bool == true, "a normal client is served while 300 idle and trickling connections are open")
                #expect((out["counted"] as? Int ?? 0) >= 411, "the gauge counts every open connection, those over the limit too: \(out)")
                #expect(out["jobWhileIdle"] as? Int == 202)
                #expect(out["jobStateWhileIdle"] as? String == "failed" || out["jobStateWhileIdle"] as? String == "done",
                        "the job ran to its end (chaos echo does not upload, so it fails as incomplete): \(out)")
                let over = out["overLimit"] as? [Any]
                #expect(over?[0] as? Int == 503)
                #expect(over?[1] as? String == "1")
                #expect(over?[2] as? String == "server_busy")
                #expect(((out["idleClosedAfter"] as? Double) ?? 99) < 5, "\(out)")
                #expect(((out["slowlorisClosedAfter"] as? Double) ?? 99) < 5, "\(out)")
                #expect((out["idleStillOpen"] as? [Int])?.isEmpty == true, "\(out)")
                let stalled = (out["stalledClosedAfter"] as? Double) ?? 99
                #expect(stalled > 1 && stalled < 5, "\(out)")
                #expect((out["bigHead"] as? [Any])?.first as? Int == 431)
                #expect((out["bigHead"] as? [Any])?.last as? String == "headers_too_large")
                #expect((out["garbage"] as? [Any])?.first as? Int == 400)
                #expect((out["garbage"] as? [Any])?.last as? String == "malformed_request")
                let flood = (out["flood"] as? [[Any]]) ?? []
                #expect(flood.prefix(3).allSatisfy { $0.first as? Int == 202 }, "\(flood)")
                #expect(flood.dropFirst(3).allSatisfy { $0.first as? Int == 429 && $0[1] as? String == "5" && $0[2] as? String == "queue_full" }, "\(flood)")
                #expect(out["healthzAfter"] as? Int == 200)
            }
        }

        static let oneShotScript = #"""
        import json, socket, sys, time, urllib.request, urllib.error
        base = sys.argv[1]
        host, port = base.split("//")[1].split(":")
        def state(job):
            return json.loads(urllib.request.urlopen(base + "/v1/jobs/" + job["id"]).read())["state"]
        def transfers():
            metrics = urllib.request.urlopen(base + "/metrics").read().decode()
            return int([l.split()[1] for l in metrics.splitlines() if l.startswith("chunkrelay_image_transfers ")][0])
        def wait_until(condition, seconds=10):
            deadline = time.monotonic() + seconds
            while not condition() and time.monotonic() < deadline:
                time.sleep(0.02)
        body = json.dumps({"function": "map-render", "params": {"width": 1000, "height": 600, "seed": 42}}).encode()
        job = json.loads(urllib.request.urlopen(urllib.request.Request(base + "/v1/jobs", data=body, method="POST")).read())
        while state(job) != "ready":
            time.sleep(0.05)
        out = {}
        # Reads the head and a little of the image, then closes with the rest unread (the kernel buffers
        # would have taken all of it: writing the last byte is not delivering it).
        sock = socket.create_connection((host, int(port)))
        sock.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % job["image"]).encode())
        sock.recv(1000)
        # Not synchronisation but the scenario: the server gets time to push what the kernel takes, so
        # the close comes after the last write, not before it (the key must survive either way).
        time.sleep(0.5)
        sock.close()
        # The transfer has ended once its claim is released; only then is the key's state settled.
        wait_until(lambda: transfers() == 0)
        out["afterPartial"] = state(job)
        # A client that reads everything and closes at once (urllib, like curl) has it, and it is gone.
        data = urllib.request.urlopen(base + job["image"]).read()
        out["bytes"] = len(data)
        wait_until(lambda: state(job) != "ready")
        out["afterFull"] = state(job)
        try:
            urllib.request.urlopen(base + job["image"])
            out["again"] = 200
        except urllib.error.HTTPError as error:
            out["again"] = error.code
        print(json.dumps(out))
        """#

        @Test func aKeyIsConsumedOnlyWhenTheClientHasEveryByte() async throws {
            try await withChunkRelay { gateway, _ in
                let result = try await run(["python3", "-c", Self.oneShotScript, gateway])
                #expect(result.status == 0, "\(result.output)")
                let lastLine = result.output.split(separator: "\n").last.map(String.init) ?? ""
                let out = try #require(try JSONSerialization.jsonObject(with: Data(lastLine.utf8)) as? [String: Any], "\(result.output)")
                #expect(out["afterPartial"] as? String == "ready", "a client that stopped reading did not consume the key")
                #expect(out["bytes"] as? Int == 601_454)
                #expect(out["afterFull"] as? String == "done")
                #expect(out["again"] as? Int == 410)
            }
        }
    }
}
