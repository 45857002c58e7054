#!/usr/bin/env python3
"""Process-churn soak: the real `chunkrelay serve` starts and stops thousands of function processes.

    python3 .ci/churn-soak.py --cycles 2000        # after `swift build` (uses .build/debug/chunkrelay)

Each cycle creates a `chaos` sleep job (max concurrency 1), waits until its function process runs,
cancels the job (DELETE kills the process) and waits until the process is gone. Foundation's `Process`
crashed the server in libdispatch after a few hundred such cycles. At the end a real upload job must
complete with the right digest on the same server. Prints a table; exits 1 on any failure.
Standard library only.
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from soak_http import status as call

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def children(pid, name):
    """Child processes of `pid` whose command is `name`."""
    found = []
    try:
        threads = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return found
    for thread in threads:
        try:
            with open("/proc/%d/task/%s/children" % (pid, thread)) as f:
                pids = f.read().split()
        except OSError:
            continue
        for child in pids:
            try:
                with open("/proc/%s/comm" % child) as f:
                    if f.read().strip() == name:
                        found.append(int(child))
            except OSError:
                pass
    return found


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def open_fds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return 0


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.002)
    raise RuntimeError("timed out after %ss waiting for %s" % (timeout, what))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycles", type=int, default=2000)
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build", "debug", "chunkrelay"))
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="churn-soak-")
    log = open(os.path.join(work, "serve.log"), "wb")
    server = subprocess.Popen(
        [args.binary, "serve", "--port", "0", "--runtime-port", "0", "--state-dir", os.path.join(work, "state"),
         "--max-concurrency", "1", "--log-level", "notice", "--functions", os.path.join(ROOT, "functions")],
        cwd=ROOT, stdout=log, stderr=log)
    failures = []
    started = stopped = 0
    pids = set()
    rss_before = rss_after = fds_before = fds_after = 0
    final = "not run"
    began = time.monotonic()
    try:
        port = None
        deadline = time.monotonic() + 600  # a fresh machine may build `chaos` on first use
        while port is None and time.monotonic() < deadline:
            with open(log.name, "rb") as f:
                for line in f.read().decode(errors="replace").splitlines():
                    if "gateway listening on " in line:
                        port = int(line.rsplit(":", 1)[1].split()[0])
            if server.poll() is not None:
                raise RuntimeError("serve exited at start")
            time.sleep(0.05)
        if port is None:
            raise RuntimeError("serve did not announce its port")
        base = "http://127.0.0.1:%d" % port
        # The first cycle may build `chaos`; RSS is compared from after it.
        for cycle in range(args.cycles):
            code, body = call("POST", base + "/v1/jobs", {"function": "chaos", "params": {"mode": "sleep", "seconds": 30}})
            if code != 202:
                raise RuntimeError("cycle %d: create answered %d %s" % (cycle, code, body[:200]))
            job = json.loads(body)["id"]
            wait_for(lambda: children(server.pid, "chaos"), 600 if cycle == 0 else 60, "cycle %d's process to start" % cycle)
            pids.update(children(server.pid, "chaos"))
            started += 1
            code, body = call("DELETE", base + "/v1/jobs/" + job)
            if code != 200:
                raise RuntimeError("cycle %d: DELETE answered %d %s" % (cycle, code, body[:200]))
            wait_for(lambda: not children(server.pid, "chaos"), 60, "cycle %d's process to stop" % cycle)
            stopped += 1
            if server.poll() is not None:
                raise RuntimeError("serve died at cycle %d (exit %s)" % (cycle, server.returncode))
            if cycle == 0:
                rss_before, fds_before = rss_kib(server.pid), open_fds(server.pid)
            if (cycle + 1) % 500 == 0:
                print("  %d cycles, %.0f s" % (cycle + 1, time.monotonic() - began), flush=True)
        rss_after, fds_after = rss_kib(server.pid), open_fds(server.pid)
        # The next job completes on the same server, byte for byte.
        size = 300_000
        code, body = call("POST", base + "/v1/jobs", {"function": "chaos", "params": {"mode": "upload", "bytes": size}})
        created = json.loads(body)
        job_url = base + "/v1/jobs/" + created["id"]
        wait_for(lambda: json.loads(call("GET", job_url)[1]).get("state") in ("ready", "failed"), 120, "the final job")
        job = json.loads(call("GET", job_url)[1])
        code, image = call("GET", base + created["image"])
        if code == 200 and len(image) == size and hashlib.sha256(image).hexdigest() == job.get("sha256"):
            final = "completed, %d bytes, digest verified" % size
        else:
            final = "FAILED (%s, status %d, %d bytes)" % (job.get("state"), code, len(image))
            failures.append("final job")
    except RuntimeError as error:
        failures.append(str(error))
    finally:
        alive = server.poll() is None
        if alive:
            server.terminate()
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
        log.close()
    elapsed = time.monotonic() - began
    rows = [
        ("cycles", "%d of %d" % (stopped, args.cycles)),
        ("function processes started / stopped", "%d / %d (%d distinct pids)" % (started, stopped, len(pids))),
        ("server", "up to the end" if alive and not any("died" in f for f in failures) else "DIED"),
        ("server RSS after cycle 1 / at the end", "%.1f / %.1f MiB" % (rss_before / 1024, rss_after / 1024)),
        ("server open files after cycle 1 / at the end", "%d / %d" % (fds_before, fds_after)),
        ("next job after the churn", final),
        ("time", "%.0f s (%.1f ms per cycle)" % (elapsed, 1000 * elapsed / max(stopped, 1))),
    ]
    width = max(len(name) for name, _ in rows)
    print("| %s | value |" % "churn soak".ljust(width))
    print("|%s|-------|" % ("-" * (width + 2)))
    for name, value in rows:
        print("| %s | %s |" % (name.ljust(width), value))
    if fds_after > fds_before + 20:
        failures.append("the server's open files grew from %d to %d" % (fds_before, fds_after))
    if failures or stopped != args.cycles:
        print("FAILED: " + "; ".join(failures))
        with open(log.name, "rb") as f:
            text = f.read().decode(errors="replace")
        # A crash report starts with "Crash" / "Fatal error"; show it from there, else the log's end.
        starts = [text.find(marker) for marker in ("💣", "Fatal error", "*** Signal", "Crash") if text.find(marker) >= 0]
        print(text[min(starts):min(starts) + 12000] if starts else text[-4000:])
        shutil.rmtree(work, ignore_errors=True)
        sys.exit(1)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
