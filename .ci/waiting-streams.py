"""Holds N waiting event streams open on a running gateway, for a memory profile of them.

One job sleeps (`chaos`, an hour) under `--max-concurrency 1`, N more wait behind it, and a raw
socket per queued job reads its event stream. Prints how many streams answered, holds them for
HOLD seconds, then closes them all by exiting.

    python3 .ci/waiting-streams.py http://127.0.0.1:8080 2000 5
"""
import json
import socket
import sys
import time
import urllib.request


def create(base):
    body = json.dumps({"function": "chaos", "params": {"mode": "sleep", "seconds": 3600}}).encode()
    request = urllib.request.Request(base + "/v1/jobs", data=body, headers={"Content-Type": "application/json"}, method="POST")
    return json.load(urllib.request.urlopen(request))["id"]


def main():
    base, count, hold = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    host, port = base.split("//")[1].rsplit(":", 1)
    create(base)  # the one that runs
    ids = [create(base) for _ in range(count)]
    streams = []
    for job in ids:
        stream = socket.create_connection((host, int(port)))
        stream.sendall(f"GET /v1/jobs/{job}/events HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        streams.append(stream)
    time.sleep(2)
    answered = sum(1 for stream in streams if stream.recv(4096))
    print(f"{count} streams open, {answered} answered", flush=True)
    time.sleep(hold)


if __name__ == "__main__":
    main()
