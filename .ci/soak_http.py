"""What the soak scripts share: one HTTP call that never raises (standard library only)."""
import http.client
import json
import urllib.error
import urllib.request


def status(method, url, body=None, timeout=10):
    """(status, body bytes); status 0 when the server could not be reached or the answer broke off.
    `body` may be bytes or a JSON-encodable value."""
    if body is not None and not isinstance(body, (bytes, bytearray)):
        body = json.dumps(body).encode()
    request = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (OSError, urllib.error.URLError, http.client.HTTPException):
        # A kill mid-body raises IncompleteRead (an HTTPException, not an OSError).
        return 0, b""
