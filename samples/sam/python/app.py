"""A generator function in Python: renders an RGB gradient as a PNG and, for a gateway job, uploads it
with ChunkRelay's chunk module; behind an API Gateway event it answers as a REST API proxy function."""
import json
import os
import struct
import zlib

import chunkrelay


def gradient_png(width, height, seed):
    """An RGB gradient, stored without compression so that a 2048×2048 image is 12 MiB."""
    if not (1 <= width <= 8192 and 1 <= height <= 8192):
        raise ValueError(f"width and height must be 1...8192, got {width}x{height}")
    rows = bytearray()
    for y in range(height):
        rows += b"\x00" + bytes((x + seed) & 0xFF if c == 0 else (y + seed) & 0xFF if c == 1 else (x ^ y) & 0xFF
                                for x in range(width) for c in range(3))

    def section(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + section(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + section(b"IDAT", zlib.compress(bytes(rows), 0)) + section(b"IEND", b""))


def lambda_handler(event, context):
    if chunkrelay.is_job(event):
        params = event.get("params") or {}
        image = gradient_png(int(params.get("width", 256)), int(params.get("height", 256)), int(params.get("seed", 0)))
        manifest = chunkrelay.upload(event, image, "image/png")
        print(f"uploaded {manifest['bytes']} bytes in {manifest['chunks']} chunks (request {context.aws_request_id})")
        return manifest
    name = ((event or {}).get("pathParameters") or {}).get("name", "world")
    body = {
        "message": f"{os.environ['GREETING']}, {name}",
        "stage": os.environ["STAGE"],
        "detail": os.environ.get("LOG_DETAIL"),
        "trace": os.environ.get("_X_AMZN_TRACE_ID"),
        "requestId": context.aws_request_id,
        "remainingMs": context.get_remaining_time_in_millis(),
    }
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}
