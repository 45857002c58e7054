"""The ChunkRelay chunk protocol for Python generator functions, standard library only.

    import chunkrelay

    def lambda_handler(event, context):
        image = render(event.get("params") or {})
        return chunkrelay.upload(event, image, "image/png")

`upload` does what FunctionKit's ChunkUploader does for Swift: splits the image at the job's chunk cap,
PUTs each chunk with its SHA-256 (RFC 9530 `Content-Digest`) and the attempt's bearer token (a few at
a time), retries network errors, 5xx and 429 (waiting out `Retry-After`) with a doubling backoff, then
POSTs the manifest to `complete`. A 4xx other than 429 is final and raises `UploadError`.

Under ChunkRelay's runtime this file is importable as is; to deploy, copy it beside your handler.
"""
import base64
import concurrent.futures
import hashlib
import json
import time
import urllib.error
import urllib.request

__all__ = ["upload", "is_job", "UploadError"]


class UploadError(Exception):
    """The gateway refused an upload for good."""

    def __init__(self, status, body):
        try:
            error = json.loads(body)["error"]
            self.code, message = error.get("code", f"http_{status}"), error.get("message", body)
        except (ValueError, KeyError, TypeError):
            self.code, message = f"http_{status}", body
        self.status = status
        super().__init__(f"gateway answered {status} {self.code}: {message}")


def is_job(event):
    """Whether `event` is a gateway job's invocation (rather than, say, a Function URL request)."""
    return isinstance(event, dict) and all(key in event for key in ("jobId", "chunkSize", "ingestURL", "uploadToken"))


def _send(url, data, method, token, headers, attempts, timeout):
    delay = 0.1
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Authorization", f"Bearer {token}")
        for name, value in headers.items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.read()
        except urllib.error.HTTPError as error:
            body = error.read().decode(errors="replace")
            if (error.code < 500 and error.code != 429) or attempt == attempts:
                raise UploadError(error.code, body) from None
            retry_after = error.headers.get("Retry-After")
            if retry_after and retry_after.isdigit():
                delay = max(delay, float(retry_after))
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if attempt == attempts:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 2.0)


def upload(event, image, content_type="image/png", attempts=5, parallelism=4, timeout=30):
    """Uploads `image` (bytes) for the job `event` names and completes the job; returns the manifest."""
    if not is_job(event):
        raise ValueError("the event is not a ChunkRelay job (it needs jobId, chunkSize, ingestURL and uploadToken)")
    size = int(event["chunkSize"])
    if size <= 0:
        raise ValueError("chunkSize must be positive")
    base, token = event["ingestURL"], event["uploadToken"]
    view = memoryview(image)
    count = max(1, (len(view) + size - 1) // size)

    def put(index):
        part = bytes(view[index * size:(index + 1) * size])
        digest = base64.b64encode(hashlib.sha256(part).digest()).decode()
        _send(f"{base}/chunks/{index}", part, "PUT", token,
              {"Content-Digest": f"sha-256=:{digest}:", "Content-Type": "application/octet-stream"}, attempts, timeout)

    # Chunks may arrive out of order; the gateway takes them so.
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        for future in [pool.submit(put, index) for index in range(count)]:
            future.result()
    manifest = {"chunks": count, "bytes": len(view), "sha256": hashlib.sha256(view).hexdigest(), "contentType": content_type}
    _send(f"{base}/complete", json.dumps(manifest).encode(), "POST", token, {"Content-Type": "application/json"}, attempts, timeout)
    return manifest
