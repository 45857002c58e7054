#!/usr/bin/env python3
"""kill -9 soak: many real jobs, the real `chunkrelay serve` killed at random moments and restarted on
the same state directory, every image checked byte for byte at the end.

    python3 .ci/crash-soak.py --jobs 100            # after `swift build` (uses .build/debug/chunkrelay)

Prints one line per kill and a table; exits 1 unless every job's image arrived with the right digest
and every consumed key stayed consumed. Standard library only: a different client from the Swift SDK.
"""
import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from soak_http import status

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# map-render sizes used round-robin; their digests are learnt in a calibration run with no kills.
VARIANTS = [{"width": 256, "height": 256, "seed": 7}, {"width": 300, "height": 200, "seed": 3},
            {"width": 200, "height": 320, "seed": 11}, {"width": 384, "height": 128, "seed": 5}]


class Server:
    """`chunkrelay serve` as a child process on fixed ports (learnt at the first start)."""

    def __init__(self, binary, state, port=0, runtime_port=0):
        self.binary, self.state, self.port, self.runtime_port = binary, state, port, runtime_port
        self.process = None
        self.log = open(state + ".log", "ab")

    def start(self):
        args = [self.binary, "serve", "--port", str(self.port), "--runtime-port", str(self.runtime_port),
                "--state-dir", self.state, "--max-concurrency", "2", "--chunk-size", "1024", "--log-level", "notice",
                "--functions", os.path.join(ROOT, "functions")]
        offset = self.log.tell()
        self.process = subprocess.Popen(args, cwd=ROOT, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with open(self.log.name, "rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace")
            for line in text.splitlines():
                if "gateway listening on " in line and not self.port:
                    self.port = int(line.rsplit(":", 1)[1].split()[0])
                if "runtime (Lambda Invoke API) listening on " in line and not self.runtime_port:
                    self.runtime_port = int(line.split("listening on ")[1].split(";")[0].rsplit(":", 1)[1])
            if self.port and status("GET", self.url("/healthz"))[0] == 200:
                return
            if self.process.poll() is not None:
                sys.exit("serve exited at start:\n" + text)
            time.sleep(0.05)
        sys.exit("serve did not start")

    def kill9(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)


def until_ok(method, url, body=None):
    """Retries while the server is down (it is being restarted)."""
    while True:
        code, data = status(method, url, body)
        if code:
            return code, data
        time.sleep(0.1)


def create_jobs(server, count):
    jobs = []
    for index in range(count):
        params = VARIANTS[index % len(VARIANTS)]
        code, data = until_ok("POST", server.url("/v1/jobs"), json.dumps({"function": "map-render", "params": params}).encode())
        if code != 202:
            sys.exit("job refused: %d %s" % (code, data))
        created = json.loads(data)
        jobs.append({"id": created["id"], "image": created["image"], "variant": index % len(VARIANTS), "sha256": None})
    return jobs


def retrieve_all(server, jobs, stop_at=None):
    """Downloads every ready image once; returns when all are downloaded (or at stop_at)."""
    while any(job["sha256"] is None for job in jobs):
        if stop_at and time.monotonic() > stop_at:
            return
        for job in jobs:
            if job["sha256"] is not None:
                continue
            code, data = status("GET", server.url("/v1/jobs/" + job["id"]))
            if code != 200:
                continue
            state = json.loads(data)["state"]
            if state in ("failed", "cancelled", "expired"):
                job["sha256"] = "job " + state
                continue
            if state != "ready":
                continue
            code, image = status("GET", server.url(job["image"]), timeout=30)
            if code == 200:
                job["sha256"] = hashlib.sha256(image).hexdigest()
                job["reported"] = json.loads(data).get("sha256")
        time.sleep(0.05)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build", "debug", "chunkrelay"))
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--max-pause", type=float, default=2.5, help="longest time between kills, seconds")
    options = parser.parse_args()
    rng = random.Random(options.seed)
    workspace = tempfile.mkdtemp(prefix="crash-soak-")
    try:
        # Calibration: the digest of each variant from a server nobody kills.
        calibration = Server(options.binary, os.path.join(workspace, "calibration"))
        calibration.start()
        reference = create_jobs(calibration, len(VARIANTS))
        retrieve_all(calibration, reference)
        calibration.stop()
        expected = [job["sha256"] for job in reference]
        if any(len(digest) != 64 for digest in expected):
            sys.exit("calibration failed: %s" % expected)

        server = Server(options.binary, os.path.join(workspace, "state"))
        server.start()
        jobs = create_jobs(server, options.jobs)
        done = threading.Event()
        worker = threading.Thread(target=lambda: (retrieve_all(server, jobs), done.set()))
        worker.start()
        kills = 0
        started = time.monotonic()
        while not done.wait(rng.uniform(0.2, options.max_pause)):
            finished = sum(job["sha256"] is not None for job in jobs)
            server.kill9()
            kills += 1
            print("kill -9 #%d at %.1f s: %d/%d images retrieved" % (kills, time.monotonic() - started, finished, len(jobs)), flush=True)
            server.start()
            if time.monotonic() - started > 900:
                print("giving up after 15 minutes", flush=True)
                break
        done.wait(60)
        # One more kill once the gateway has recorded every retrieval (`done`): consumed keys must stay
        # consumed. (A kill between a transfer's last byte and that record leaves the key retrievable
        # once more, with the same bytes: the gateway never consumes a key it has not finished sending.)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            states = {job["id"]: json.loads(until_ok("GET", server.url("/v1/jobs/" + job["id"]))[1])["state"] for job in jobs}
            if all(state == "done" for state in states.values()):
                break
            time.sleep(0.2)
        served_again = 0
        for job in jobs:
            if states[job["id"]] == "ready":
                code, image = until_ok("GET", server.url(job["image"]))
                if code == 200 and hashlib.sha256(image).hexdigest() == job["sha256"]:
                    served_again += 1
                else:
                    job["sha256"] = "served again differently (%d)" % code
        # The gateway records a retrieval once the client's TCP has acknowledged the last byte: wait for it.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(
                json.loads(until_ok("GET", server.url("/v1/jobs/" + job["id"]))[1])["state"] != "done" for job in jobs):
            time.sleep(0.1)
        server.kill9()
        server.start()
        consumed = sum(status("GET", server.url(job["image"]))[0] == 410 for job in jobs)
        exit_code = server.stop()

        correct = sum(job["sha256"] == expected[job["variant"]] and job.get("reported") == job["sha256"] for job in jobs)
        wrong = [job for job in jobs if job["sha256"] != expected[job["variant"]]]
        print()
        print("| jobs | kill -9 | digests correct | consumed keys still 410 | served again (killed in last-byte window) | clean stop | seed |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        print("| %d | %d | %d/%d | %d/%d | %d | %s | %d |" % (len(jobs), kills, correct, len(jobs), consumed, len(jobs), served_again,
                                                          "yes" if exit_code == 0 else "exit %d" % exit_code, options.seed))
        for job in wrong[:10]:
            print("wrong: job %s variant %d got %s" % (job["id"], job["variant"], job["sha256"]))
        ok = correct == len(jobs) and consumed == len(jobs) and exit_code == 0 and kills > 0
        sys.exit(0 if ok else 1)
    finally:
        shutil.rmtree(workspace, ignore_errors=True)


if __name__ == "__main__":
    main()
