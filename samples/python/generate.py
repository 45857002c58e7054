"""Generates an image through a ChunkRelay gateway with httpx and httpx-sse.

    python generate.py --server http://127.0.0.1:8080 --out map.png [--delivery stream|retrieve] [--fault SPEC] [KEY=VALUE ...]

Stream mode reassembles the image from the job's `chunk` events (resuming with Last-Event-ID if the
connection drops); retrieve mode waits for `ready` and downloads the image once (resuming with Range
if the connection drops). A 429 or 503 with Retry-After is waited out. Either way the whole image's
SHA-256 is checked before the file appears, and any mismatch or failure exits non-zero.

--fault sends `X-ChunkRelay-Fault: SPEC` with the event stream and image requests, to watch the
resumes work against a gateway started with `chunkrelay serve --faults` (e.g. --fault reset-after=1MiB).
"""
import argparse
import base64
import hashlib
import json
import os
import sys
import time

import httpx
from httpx_sse import connect_sse


def parse_params(pairs):
    params = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            params[key] = int(value)
        except ValueError:
            try:
                params[key] = float(value)
            except ValueError:
                params[key] = value
    return params


# Breaks in a row that brought nothing new before giving up; a break after progress always resumes.
MAX_BREAKS = 5


def wait_if_told(response):
    """Sleeps out a 429/503 with Retry-After and returns True, or returns False for any other answer."""
    retry_after = response.headers.get("Retry-After", "")
    if response.status_code in (429, 503) and retry_after.isdigit() and int(retry_after) <= 30:
        print(f"{response.status_code}: retrying after {retry_after} s")
        time.sleep(int(retry_after))
        return True
    return False


def follow(client, path, headers, last_event_id=None):
    """Yields the job's events, reconnecting after the last chunk received when the stream drops."""
    breaks, retry_ms = 0, 500
    while True:
        sent = dict(headers, **({"Last-Event-ID": last_event_id} if last_event_id else {}))
        progressed = False
        try:
            with connect_sse(client, "GET", path, headers=sent) as source:
                if source.response.status_code != 200:
                    source.response.read()
                    if wait_if_told(source.response) and breaks < MAX_BREAKS:
                        breaks += 1
                        continue
                    raise SystemExit(f"event stream refused: {source.response.status_code} {source.response.text}")
                for event in source.iter_sse():
                    retry_ms = event.retry or retry_ms
                    if event.event == "chunk":
                        last_event_id, progressed = event.id, True
                    yield event
                    if event.event in ("ready", "done", "failed"):
                        return
        except httpx.TransportError as error:
            breaks = 1 if progressed else breaks + 1
            if breaks > MAX_BREAKS:
                raise SystemExit(f"the event stream kept breaking off: {error}")
            print(f"event stream broke off ({error.__class__.__name__}); resuming after {last_event_id or 'the start'}")
            time.sleep(min(retry_ms, 5000) / 1000)


def download(client, path, headers, out, digest):
    """Appends the one-shot image to `out`, resuming with Range after a break; returns its size."""
    size, breaks = 0, 0
    while True:
        sent = dict(headers, **({"Range": f"bytes={size}-"} if size else {}))
        before = size
        try:
            with client.stream("GET", path, headers=sent) as response:
                if response.status_code not in (200, 206):
                    response.read()
                    if wait_if_told(response) and breaks < MAX_BREAKS:
                        breaks += 1
                        continue
                    raise SystemExit(f"download refused: {response.status_code} {response.text}")
                if response.status_code == 200 and size:
                    raise SystemExit("the server ignored the Range of a resumed download")
                for piece in response.iter_bytes():
                    out.write(piece)
                    digest.update(piece)
                    size += len(piece)
                return size
        except httpx.TransportError as error:
            breaks = 1 if size > before else breaks + 1
            if breaks > MAX_BREAKS:
                raise SystemExit(f"the download kept breaking off: {error}")
            print(f"download broke off after {size} bytes ({error.__class__.__name__}); resuming")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--delivery", choices=["stream", "retrieve"], default="stream")
    parser.add_argument("--function", default="map-render")
    parser.add_argument("--fault", help="X-ChunkRelay-Fault for the event stream and image requests (gateway started with --faults)")
    parser.add_argument("params", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args()

    headers = {"X-ChunkRelay-Fault": args.fault} if args.fault else {}
    with httpx.Client(base_url=args.server.rstrip("/"), timeout=httpx.Timeout(60, read=None)) as client:
        body = {"function": args.function, "params": parse_params(args.params), "delivery": args.delivery}
        response = client.post("/v1/jobs", json=body)
        for _ in range(MAX_BREAKS):
            if not wait_if_told(response):
                break
            response = client.post("/v1/jobs", json=body)
        if response.status_code != 202:
            raise SystemExit(f"job refused: {response.status_code} {response.text}")
        job = response.json()
        print(f"job {job['id']} created ({args.delivery})")

        partial = args.out + ".partial"
        digest, size, expected = hashlib.sha256(), 0, None
        try:
            with open(partial, "wb") as out:
                for event in follow(client, job["events"], headers):
                    if event.event not in ("queued", "started", "progress", "retrying", "chunk", "ready", "done", "failed"):
                        continue  # httpx-sse also reports a block that only sets `retry:`
                    data = json.loads(event.data) if event.event != "chunk" else None
                    if event.event == "queued":
                        print(f"queued: position {data['position']}")
                    elif event.event == "retrying":
                        # The attempt that sent the chunks so far failed; the retry starts from chunk 0.
                        out.seek(0)
                        out.truncate()
                        digest, size = hashlib.sha256(), 0
                    elif event.event == "chunk":
                        piece = base64.b64decode("".join(event.data.split()))
                        out.write(piece)
                        digest.update(piece)
                        size += len(piece)
                    elif event.event == "done":
                        expected = data
                    elif event.event == "ready":
                        size = download(client, data["image"], headers, out, digest)
                        expected = data
                    elif event.event == "failed":
                        raise SystemExit(f"the job failed: {data['code']}: {data['message']}")
            if expected is None:
                raise SystemExit("the stream ended without a final event")
            if digest.hexdigest() != expected["sha256"] or size != expected["bytes"]:
                raise SystemExit(f"mismatch: got {size} bytes, sha256 {digest.hexdigest()}; expected {expected['bytes']} bytes, {expected['sha256']}")
            os.replace(partial, args.out)
        finally:
            if os.path.exists(partial):
                os.remove(partial)
    print(f"wrote {args.out}: {size} bytes, sha256 {digest.hexdigest()} verified")


if __name__ == "__main__":
    sys.exit(main())
