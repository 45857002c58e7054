"""A ChunkRelay generator function in Python, run by AWS's runtime interface client (awslambdaric).

It does what FunctionKit's uploader does for Swift functions: render, split at the job's chunk cap,
PUT each chunk with its SHA-256 (RFC 9530 Content-Digest) and the attempt's bearer token, retrying
network errors and 5xx, then POST the manifest to `complete`. Standard library only.
"""
import base64
import hashlib
import json
import struct
import time
import urllib.error
import urllib.request
import zlib


def render_png(width, height, seed):
    """A greyscale interference pattern; zlib level 0 keeps it above a serverless response's 6 MB."""
    if not (1 <= width <= 16384 and 1 <= height <= 16384):
        raise ValueError(f"width and height must be 1...16384, got {width}x{height}")
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter type None
        rows.extend(((x * x + y * y + seed * 97) >> 5 ^ (x ^ y)) & 0xFF for x in range(width))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(rows), 0)) + chunk(b"IEND", b"")


def send(url, data, method, token, headers=None, attempts=5):
    """Sends with retries on network errors, 5xx and 429; a 4xx is final."""
    delay = 0.1
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Authorization", f"Bearer {token}")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.read()
        except urllib.error.HTTPError as error:
            body = error.read().decode(errors="replace")
            if error.code < 500 and error.code != 429 or attempt == attempts:
                raise RuntimeError(f"gateway answered {error.code}: {body}") from None
        except urllib.error.URLError:
            if attempt == attempts:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 2.0)


def handler(event, context):
    params = event.get("params") or {}
    image = render_png(int(params.get("width", 3072)), int(params.get("height", 2048)), int(params.get("seed", 1)))
    size = event["chunkSize"]
    base = event["ingestURL"]
    token = event["uploadToken"]
    chunks = max(1, (len(image) + size - 1) // size)
    for index in range(chunks):
        part = image[index * size:(index + 1) * size]
        digest = base64.b64encode(hashlib.sha256(part).digest()).decode()
        send(f"{base}/chunks/{index}", part, "PUT", token,
             {"Content-Digest": f"sha-256=:{digest}:", "Content-Type": "application/octet-stream"})
    manifest = {"chunks": chunks, "bytes": len(image), "sha256": hashlib.sha256(image).hexdigest(), "contentType": "image/png"}
    send(f"{base}/complete", json.dumps(manifest).encode(), "POST", token, {"Content-Type": "application/json"})
    print(f"uploaded {len(image)} bytes in {chunks} chunks for job {event['jobId']} (request {context.aws_request_id})")
    return manifest
