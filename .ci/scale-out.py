#!/usr/bin/env python3
"""Three `chunkrelay serve` instances on one PostgreSQL database, behind nginx round robin (no sticky
sessions), used through the load balancer only, as a team's shared emulator would be:

  1. retrieve mode: create, follow, download once: the requests land on all three instances;
  2. stream mode, dropped after 5 chunks and resumed with Last-Event-ID (on another instance, round
     robin): nothing lost, nothing repeated, the digest holds;
  3. 30 concurrent GETs of one key: exactly one 200 with the whole image;
  4. kill -9 of an instance while jobs run: every job completes elsewhere, with the right digest.

    .venv-ci/bin/python .ci/scale-out.py --postgres postgres://postgres@127.0.0.1:5432/postgres --chunkrelay .build/debug/chunkrelay

Prints one line per check and exits 1 if any failed. Functions post their chunks through the load
balancer too (`serve --public-url`).
"""
import argparse
import base64
import concurrent.futures
import hashlib
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import httpx

DEFAULT_MAP = "30f800d1d5ebff9f84941ed647a37e2478872907ac3376546a4a19118de0c929"  # functions/map-render/fixtures/defaults.json
WIDE_MAP = "5acb74bc85ac32229e4e9249b8505dd83d463341dd0ea708a8a50070ca3c932c"  # wide-seed-42.json
ROOT = pathlib.Path(__file__).resolve().parent.parent
failures = []


def check(ok, what):
    print(("PASS " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures.append(what)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url, process, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: serve exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not become healthy")


def events(client, url, headers=None):
    """Yields (event, id, data) from an SSE response, as the gateway's contract writes them."""
    with client.stream("GET", url, headers=headers or {}, timeout=httpx.Timeout(10, read=120)) as response:
        if response.status_code != 200:
            raise RuntimeError(f"GET {url}: {response.status_code} {response.read()!r}")
        name, ident, data = None, None, []
        for line in response.iter_lines():
            if line == "":
                if name is not None or data:
                    yield name, ident, "\n".join(data)
                name, ident, data = None, None, []
            elif line.startswith(":"):
                continue
            else:
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "event":
                    name = value
                elif field == "id":
                    ident = value
                elif field == "data":
                    data.append(value)


def create(client, lb, params=None, delivery="retrieve"):
    response = client.post(f"{lb}/v1/jobs", json={"function": "map-render", "params": params or {}, "delivery": delivery})
    response.raise_for_status()
    return response.json()


def wait_ready(client, lb, job, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(f"{lb}/v1/jobs/{job['id']}").json()
        if status["state"] in ("ready", "failed", "cancelled", "expired", "done"):
            return status
        time.sleep(0.2)
    raise RuntimeError(f"job {job['id']} did not finish within {timeout} s")


class Cluster:
    """`instances` serve processes (on `store`, or each on its own SQLite when None) behind nginx."""

    def __init__(self, chunkrelay, scratch, instances, store):
        self.scratch = scratch
        self.processes = []
        self.nginx = None
        lb_port = free_port()
        self.lb = f"http://127.0.0.1:{lb_port}"
        gateways = []
        try:
            for index in range(instances):
                port, runtime_port = free_port(), free_port()
                log = open(scratch / f"serve-{index}.log", "w")
                command = [chunkrelay, "serve", "--port", str(port), "--runtime-port", str(runtime_port),
                           "--state-dir", str(scratch / f"state-{index}-{lb_port}"), "--public-url", self.lb, "--log-level", "info"]
                if store:
                    command += ["--store", store]
                self.processes.append(subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
                gateways.append(f"http://127.0.0.1:{port}")
            for url, process in zip(gateways, self.processes):
                wait_healthy(url, process)
            upstreams = "\n".join(f"        server {url[len('http://'):]} max_fails=0;" for url in gateways)
            (scratch / "nginx.conf").write_text(NGINX_CONF.format(scratch=scratch, upstreams=upstreams, port=lb_port))
            self.nginx = subprocess.Popen(["nginx", "-c", str(scratch / "nginx.conf"), "-p", str(scratch), "-g", "daemon off;"],
                                          stdout=subprocess.DEVNULL, stderr=open(scratch / "nginx-stderr.log", "w"))
            wait_healthy(self.lb, self.nginx)
        except BaseException:
            self.stop()
            raise

    def stop(self):
        if self.nginx is not None:
            self.nginx.send_signal(signal.SIGQUIT)
            self.nginx.wait(timeout=10)
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


NGINX_CONF = """
worker_processes 1;
pid {scratch}/nginx.pid;
error_log {scratch}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    log_format upstream '$request_method $uri $status $upstream_addr';
    access_log {scratch}/nginx-access.log upstream;
    client_body_temp_path {scratch}/body;
    proxy_temp_path {scratch}/proxy;
    fastcgi_temp_path {scratch}/fastcgi;
    uwsgi_temp_path {scratch}/uwsgi;
    scgi_temp_path {scratch}/scgi;
    upstream gateways {{
{upstreams}
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 16m;
        location / {{
            proxy_pass http://gateways;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 300s;
        }}
    }}
}}
"""


def run_batch(lb, count, params):
    """Creates `count` retrieve-mode jobs at once, waits for each and downloads it; returns seconds and bytes."""
    client = httpx.Client(timeout=300)
    started = time.monotonic()

    def one(_):
        job = create(client, lb, params)
        wait_ready(client, lb, job, timeout=600)
        return len(client.get(f"{lb}{job['image']}").content)

    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        sizes = list(pool.map(one, range(count)))
    return time.monotonic() - started, sum(sizes)


def bench(chunkrelay, scratch, admin, runs):
    """Aggregate jobs/s (small maps) and MB/s (16.8 MB maps) with 1, 2 and 3 instances on PostgreSQL,
    and one instance on SQLite, through the same nginx; medians of `runs`."""
    rows = []
    for label, instances, postgres in [("SQLite, 1 instance", 1, False), ("PostgreSQL, 1 instance", 1, True),
                                       ("PostgreSQL, 2 instances", 2, True), ("PostgreSQL, 3 instances", 3, True)]:
        database = f"chunkrelay_bench_{os.getpid()}_{instances}"
        store = None
        if postgres:
            subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {database}"], check=True)
            store = admin.rsplit("/", 1)[0] + "/" + database
        cluster = Cluster(chunkrelay, scratch, instances, store)
        try:
            run_batch(cluster.lb, 4, {"width": 256, "height": 256, "seed": 7})  # warm: function processes started
            small, large = [], []
            for _ in range(runs):
                seconds, _ = run_batch(cluster.lb, 40, {"width": 256, "height": 256, "seed": 7})
                small.append(40 / seconds)
                seconds, size = run_batch(cluster.lb, 8, {})
                large.append(size / seconds / 1e6)
            rows.append((label, sorted(small)[len(small) // 2], sorted(large)[len(large) // 2]))
            print(f"  {label}: {rows[-1][1]:.1f} jobs/s, {rows[-1][2]:.1f} MB/s", flush=True)
        finally:
            cluster.stop()
            if postgres:
                subprocess.run(["psql", admin, "-qc", f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"])
    base = rows[1]
    print("\n| store and instances | jobs/s (66 KB maps, 40 at once) | MB/s (16.8 MB maps, 8 at once) | vs PostgreSQL ×1 |")
    print("| --- | --- | --- | --- |")
    for label, jobs, mb in rows:
        print(f"| {label} | {jobs:.1f} | {mb:.1f} | {jobs / base[1]:.2f}× / {mb / base[2]:.2f}× |")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--postgres", required=True, help="an admin URL: the suite creates and drops its own database")
    parser.add_argument("--chunkrelay", default=str(ROOT / ".build/debug/chunkrelay"))
    parser.add_argument("--bench", type=int, metavar="RUNS", help="measure instead: 1, 2 and 3 instances, medians of RUNS runs")
    args = parser.parse_args()
    chunkrelay = str(pathlib.Path(args.chunkrelay).resolve())
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="chunkrelay-scaleout-"))
    if args.bench:
        try:
            bench(chunkrelay, scratch, args.postgres, args.bench)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return
    database = f"chunkrelay_scaleout_{os.getpid()}"
    admin = args.postgres
    store = admin.rsplit("/", 1)[0] + "/" + database
    subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {database}"], check=True)
    cluster = None
    try:
        cluster = Cluster(chunkrelay, scratch, instances=3, store=store)
        lb, processes = cluster.lb, cluster.processes
        client = httpx.Client(timeout=60)

        # 1. Retrieve mode through the load balancer.
        job = create(client, lb, {"width": 1000, "height": 600, "seed": 42})
        status = wait_ready(client, lb, job)
        image = client.get(f"{lb}{job['image']}")
        check(status["state"] == "ready" and image.status_code == 200 and hashlib.sha256(image.content).hexdigest() == WIDE_MAP,
              "retrieve: created, uploaded and downloaded through the load balancer, digest as the fixture")
        again = client.get(f"{lb}{job['image']}")
        check(again.status_code in (409, 410), f"retrieve: the key is gone after its retrieval (then {again.status_code})")
        used = {line.split()[-1] for line in (scratch / "nginx-access.log").read_text().splitlines() if line.split()[-1] != "-"}
        check(len(used) == 3, f"round robin: the requests so far landed on {len(used)} of 3 instances")

        # 2. Stream mode, dropped after 5 chunks and resumed (the reconnect goes wherever round robin sends it).
        job = create(client, lb, delivery="stream")
        chunks = {}
        last_id = None
        for name, ident, data in events(client, f"{lb}{job['events']}"):
            if name == "chunk":
                index = int(ident.split(":")[-1])
                chunks[index] = base64.b64decode(data)
                last_id = ident
                if len(chunks) == 5:
                    break
        repeated = 0
        done = None
        for name, ident, data in events(client, f"{lb}{job['events']}", headers={"Last-Event-ID": last_id}):
            if name == "chunk":
                index = int(ident.split(":")[-1])
                repeated += index in chunks
                chunks[index] = base64.b64decode(data)
            elif name in ("done", "failed"):
                done = (name, json.loads(data))
                break
        whole = b"".join(chunks[i] for i in sorted(chunks))
        streams = [line.split()[-1] for line in (scratch / "nginx-access.log").read_text().splitlines()
                   if line.startswith(f"GET /v1/jobs/{job['id']}/events ")]
        check(len(streams) == 2 and streams[0] != streams[1], f"stream: the resume went to another instance ({' then '.join(streams)})")
        check(done is not None and done[0] == "done" and repeated == 0 and sorted(chunks) == list(range(done[1]["chunks"]))
              and hashlib.sha256(whole).hexdigest() == DEFAULT_MAP,
              f"stream: resumed after 5 of {len(chunks)} chunks with Last-Event-ID, {repeated} repeated, digest as the fixture")

        # 3. Thirty concurrent GETs of one key.
        job = create(client, lb)
        wait_ready(client, lb, job)
        with concurrent.futures.ThreadPoolExecutor(30) as pool:
            answers = list(pool.map(lambda _: httpx.get(f"{lb}{job['image']}", timeout=120), range(30)))
        whole = [a for a in answers if a.status_code == 200]
        check(len(whole) == 1 and hashlib.sha256(whole[0].content).hexdigest() == DEFAULT_MAP
              and all(a.status_code in (200, 409, 410) for a in answers),
              f"30 concurrent GETs of one key: {len(whole)} whole image(s); the others {sorted({a.status_code for a in answers if a.status_code != 200})}")

        # 4. kill -9 of an instance while jobs run: every job completes elsewhere.
        jobs = [create(client, lb, {"seed": 1}) for _ in range(6)]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            states = [client.get(f"{lb}/v1/jobs/{j['id']}").json()["state"] for j in jobs]
            if "running" in states:
                break
            time.sleep(0.05)
        victim = 0
        processes[victim].send_signal(signal.SIGKILL)
        processes[victim].wait()
        started = time.monotonic()
        finished = [wait_ready(client, lb, j, timeout=240) for j in jobs]
        digests = []
        for j in jobs:
            answer = client.get(f"{lb}{j['image']}")
            digests.append(hashlib.sha256(answer.content).hexdigest() if answer.status_code == 200 else f"HTTP {answer.status_code}")
        check(all(f["state"] == "ready" for f in finished) and all(d == DEFAULT_MAP for d in digests),
              f"kill -9 of an instance with jobs running: all {len(jobs)} jobs completed in {time.monotonic() - started:.1f} s with the right digest"
              + ("" if all(d == DEFAULT_MAP for d in digests) else f" (got {digests})"))
        takeovers = (scratch / "serve-1.log").read_text() + (scratch / "serve-2.log").read_text()
        print(f"     (takeovers logged by the others: {takeovers.count('took over')})")
    finally:
        if cluster is not None:
            cluster.stop()
        subprocess.run(["psql", admin, "-qc", f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"])
        if failures:
            print(f"logs kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    if failures:
        print(f"{len(failures)} check(s) failed")
        sys.exit(1)
    print("scale-out: every check passed")


if __name__ == "__main__":
    main()
