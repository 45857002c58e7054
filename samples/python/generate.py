"""Generates an image through a ChunkRelay gateway with httpx and httpx-sse.

    python generate.py --server http://127.0.0.1:8080 --out map.png [--delivery stream|retrieve] [KEY=VALUE ...]

Stream mode reassembles the image from the job's `chunk` events (resuming with Last-Event-ID if the
connection drops); retrieve mode waits for `ready` and downloads the image once. Either way the
whole image's SHA-256 is checked before the file appears, and any mismatch or failure exits non-zero.
"""
import argparse
import base64
import hashlib
import json
import os
import sys

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


def follow(client, path, last_event_id=None):
    """Yields the job's events, reconnecting after the last chunk received when the stream drops."""
    for _ in range(5):
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        try:
            with connect_sse(client, "GET", path, headers=headers) as source:
                for event in source.iter_sse():
                    if event.event == "chunk":
                        last_event_id = event.id
                    yield event
                    if event.event in ("ready", "done", "failed"):
                        return
        except httpx.TransportError:
            continue
    raise SystemExit("the event stream kept breaking off")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--delivery", choices=["stream", "retrieve"], default="stream")
    parser.add_argument("--function", default="map-render")
    parser.add_argument("params", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args()

    with httpx.Client(base_url=args.server.rstrip("/"), timeout=httpx.Timeout(60, read=None)) as client:
        response = client.post("/v1/jobs", json={"function": args.function, "params": parse_params(args.params), "delivery": args.delivery})
        if response.status_code != 202:
            raise SystemExit(f"job refused: {response.status_code} {response.text}")
        job = response.json()
        print(f"job {job['id']} created ({args.delivery})")

        partial = args.out + ".partial"
        digest, size, expected = hashlib.sha256(), 0, None
        try:
            with open(partial, "wb") as out:
                for event in follow(client, job["events"]):
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
                        with client.stream("GET", data["image"]) as download:
                            if download.status_code != 200:
                                raise SystemExit(f"download refused: {download.status_code}")
                            for piece in download.iter_bytes():
                                out.write(piece)
                                digest.update(piece)
                                size += len(piece)
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
