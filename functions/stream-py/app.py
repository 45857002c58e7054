"""A function in Python that speaks the Lambda Runtime API with the standard library only and answers
its Function URL with a streamed HTTP response: the prelude (status and headers as JSON, then eight NUL
bytes), then the body as it is written. Query: ?lines=N (default 5) and gate=PATH (after the first line,
wait until that file exists: a test creates it once the first line reached it)."""
import http.client
import json
import os
import time

API = os.environ["AWS_LAMBDA_RUNTIME_API"]
PRELUDE_TYPE = "application/vnd.awslambda.http-integration-response"


def body(event):
    query = event.get("queryStringParameters") or {}
    lines = int(query.get("lines", "5"))
    gate = query.get("gate")
    head = {"statusCode": 200, "headers": {"content-type": "text/plain; charset=utf-8", "x-runtime": "python"}}
    yield json.dumps(head).encode() + b"\0" * 8
    for index in range(lines):
        yield f"line {index}\n".encode()
        if index == 0 and gate:
            deadline = time.monotonic() + 20
            while not os.path.exists(gate):
                if time.monotonic() > deadline:
                    raise TimeoutError("nobody received the first line within 20 s")
                time.sleep(0.01)


def respond(request_id, event):
    connection = http.client.HTTPConnection(API)
    headers = {
        "Content-Type": PRELUDE_TYPE,
        "Lambda-Runtime-Function-Response-Mode": "streaming",
        "Transfer-Encoding": "chunked",
    }
    # encode_chunked sends each piece the generator yields as its own chunk, as soon as it is yielded.
    connection.request("POST", f"/2018-06-01/runtime/invocation/{request_id}/response", body=body(event), headers=headers, encode_chunked=True)
    connection.getresponse().read()
    connection.close()


def fail(request_id, error):
    connection = http.client.HTTPConnection(API)
    payload = json.dumps({"errorType": type(error).__name__, "errorMessage": str(error)})
    connection.request("POST", f"/2018-06-01/runtime/invocation/{request_id}/error", body=payload,
                       headers={"Content-Type": "application/json", "Lambda-Runtime-Function-Error-Type": type(error).__name__})
    connection.getresponse().read()
    connection.close()


while True:
    connection = http.client.HTTPConnection(API)
    connection.request("GET", "/2018-06-01/runtime/invocation/next")
    response = connection.getresponse()
    request_id = response.getheader("Lambda-Runtime-Aws-Request-Id")
    event = json.loads(response.read() or b"{}")
    connection.close()
    try:
        respond(request_id, event)
    except Exception as error:  # a failure before the stream began is reported as the function's error
        fail(request_id, error)
