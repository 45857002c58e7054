"""A ChunkRelay generator function in Python, run by AWS's runtime interface client (awslambdaric).

It renders; ChunkRelay's chunk module (`chunkrelay.py`, on the runtime's PYTHONPATH) uploads, as
FunctionKit's uploader does for Swift functions. Standard library only.
"""
import struct
import zlib

import chunkrelay


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


def handler(event, context):
    params = event.get("params") or {}
    image = render_png(int(params.get("width", 3072)), int(params.get("height", 2048)), int(params.get("seed", 1)))
    manifest = chunkrelay.upload(event, image, "image/png")
    print(f"uploaded {len(image)} bytes in {manifest['chunks']} chunks for job {event['jobId']} (request {context.aws_request_id})")
    return manifest
