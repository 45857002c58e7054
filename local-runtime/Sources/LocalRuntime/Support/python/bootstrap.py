"""Runs a Python Lambda handler (`_HANDLER`, e.g. `app.lambda_handler`) against the Lambda Runtime API,
with the standard library only: what AWS's python3.x runtime does, without its container.

ChunkRelay ships this for functions whose own environment has no `awslambdaric`. It imports the handler
once (an import failure is reported as an init error, as Lambda reports `Runtime.ImportModuleError`),
then loops: next event, handler(event, context), response or error in Lambda's shape.
"""
import importlib
import json
import logging
import os
import sys
import time
import traceback
import urllib.request

API = os.environ["AWS_LAMBDA_RUNTIME_API"]
BASE = f"http://{API}/2018-06-01/runtime"


def post(path, body, headers=None):
    request = urllib.request.Request(f"{BASE}{path}", data=body, method="POST")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    with urllib.request.urlopen(request) as response:
        response.read()


def error_payload(error, kind=None):
    lines = traceback.format_exception(type(error), error, error.__traceback__)
    return {
        "errorMessage": str(error),
        "errorType": kind or type(error).__name__,
        "requestId": "",
        "stackTrace": [line.rstrip("\n") for line in lines[1:]],
    }


def report_init_error(payload):
    body = json.dumps(payload).encode()
    post("/init/error", body, {"Content-Type": "application/json", "Lambda-Runtime-Function-Error-Type": payload["errorType"]})
    print(f"[ERROR] {payload['errorType']}: {payload['errorMessage']}", file=sys.stderr, flush=True)
    sys.exit(1)


def load_handler(name):
    module_path, _, function = name.rpartition(".")
    if not module_path or not function:
        report_init_error({"errorMessage": f"Bad handler '{name}': not enough values to unpack (expected 2, got 1)",
                           "errorType": "Runtime.MalformedHandlerName", "requestId": "", "stackTrace": []})
    try:
        module = importlib.import_module(module_path.replace("/", "."))
    except ImportError as error:
        report_init_error({"errorMessage": f"Unable to import module '{module_path}': {error}",
                           "errorType": "Runtime.ImportModuleError", "requestId": "", "stackTrace": []})
    except Exception as error:  # the module's own code failed while it was imported
        report_init_error(error_payload(error, "Runtime.UserCodeSyntaxError" if isinstance(error, SyntaxError) else None))
    handler = getattr(module, function, None)
    if handler is None:
        report_init_error({"errorMessage": f"Handler '{function}' missing on module '{module_path}'",
                           "errorType": "Runtime.HandlerNotFound", "requestId": "", "stackTrace": []})
    return handler


class Context:
    """The `context` Lambda passes a Python handler."""

    def __init__(self, headers):
        self.aws_request_id = headers.get("Lambda-Runtime-Aws-Request-Id")
        self.invoked_function_arn = headers.get("Lambda-Runtime-Invoked-Function-Arn")
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self._deadline = int(headers.get("Lambda-Runtime-Deadline-Ms") or 0)
        client_context = headers.get("Lambda-Runtime-Client-Context")
        identity = headers.get("Lambda-Runtime-Cognito-Identity")
        self.client_context = json.loads(client_context) if client_context else None
        self.identity = json.loads(identity) if identity else None

    def get_remaining_time_in_millis(self):
        return max(0, self._deadline - int(time.time() * 1000))


class RequestIdFilter(logging.Filter):
    """Puts the current request id into every record, as Lambda's log format has it."""
    request_id = ""

    def filter(self, record):
        record.aws_request_id = RequestIdFilter.request_id
        return True


def configure_logging():
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s", "%Y-%m-%dT%H:%M:%S"))
    logging.Formatter.converter = time.gmtime
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers = [handler]
    # Lambda's Python runtime logs WARNING and up unless the function's JSON logging sets a level.
    level = os.environ.get("AWS_LAMBDA_LOG_LEVEL")
    levels = {"TRACE": logging.DEBUG, "DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARN": logging.WARNING,
              "ERROR": logging.ERROR, "FATAL": logging.CRITICAL}
    root.setLevel(levels.get((level or "").upper(), logging.WARNING))


def main():
    sys.stdout.reconfigure(line_buffering=True)
    sys.stderr.reconfigure(line_buffering=True)
    sys.path.insert(0, os.environ.get("LAMBDA_TASK_ROOT", os.getcwd()))
    configure_logging()
    handler = load_handler(os.environ["_HANDLER"])
    while True:
        with urllib.request.urlopen(f"{BASE}/invocation/next") as response:
            headers = response.headers
            body = response.read()
        request_id = headers.get("Lambda-Runtime-Aws-Request-Id")
        trace = headers.get("Lambda-Runtime-Trace-Id")
        if trace:
            os.environ["_X_AMZN_TRACE_ID"] = trace
        else:
            os.environ.pop("_X_AMZN_TRACE_ID", None)
        RequestIdFilter.request_id = request_id
        try:
            event = json.loads(body) if body else None
            result = handler(event, Context(headers))
            try:
                answer = json.dumps(result).encode()
            except (TypeError, ValueError) as error:
                raise MarshalError(f"Unable to marshal response: {error}") from None
        except Exception as error:
            payload = error_payload(error)
            payload["requestId"] = request_id
            print(f"[ERROR] {payload['errorType']}: {payload['errorMessage']}", flush=True)
            post(f"/invocation/{request_id}/error", json.dumps(payload).encode(),
                 {"Content-Type": "application/json", "Lambda-Runtime-Function-Error-Type": payload["errorType"]})
            continue
        post(f"/invocation/{request_id}/response", answer, {"Content-Type": "application/json"})


class MarshalError(Exception):
    """The handler returned what JSON cannot hold (Lambda's `Runtime.MarshalError`)."""


MarshalError.__name__ = "Runtime.MarshalError"

if __name__ == "__main__":
    main()
