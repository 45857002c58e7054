// Runs a Node.js Lambda handler (`_HANDLER`, e.g. `index.handler`) against the Lambda Runtime API with
// Node's standard library only: what AWS's nodejs runtimes do, without their container or the runtime
// interface client (which is not reachable from npm here).
//
// CommonJS and ES modules (.js, .mjs, .cjs), async and callback handlers, and streamed responses through
// `awslambda.streamifyResponse` and `awslambda.HttpResponseStream.from`, as on AWS.
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { Writable } from "node:stream";
import { pathToFileURL } from "node:url";
import { format } from "node:util";

const [host, port] = process.env.AWS_LAMBDA_RUNTIME_API.split(":");
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const base = "/2018-06-01/runtime";
const streamingMarker = Symbol.for("aws.lambda.runtime.handler.streaming");
const preludeType = "application/vnd.awslambda.http-integration-response";
let currentRequestId = "";

function request(method, urlPath, { headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port, method, path: base + urlPath, agent, headers }, (res) => {
      const parts = [];
      res.on("data", (part) => parts.push(part));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(parts) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

function errorPayload(error) {
  const isError = error instanceof Error;
  return {
    errorType: isError ? error.name || "Error" : "Error",
    errorMessage: isError ? error.message : typeof error === "string" ? error : JSON.stringify(error) ?? String(error),
    trace: isError && error.stack ? error.stack.split("\n") : [],
  };
}

async function reportError(urlPath, error, type) {
  const payload = errorPayload(error);
  if (type) payload.errorType = type;
  console.error(`${payload.errorType}: ${payload.errorMessage}`);
  await request("POST", urlPath, {
    headers: { "Content-Type": "application/json", "Lambda-Runtime-Function-Error-Type": payload.errorType },
    body: JSON.stringify(payload),
  });
}

// Lambda's console: every line carries the time, the request id and the level.
for (const [method, level] of [["log", "INFO"], ["info", "INFO"], ["warn", "WARN"], ["error", "ERROR"], ["debug", "DEBUG"], ["trace", "TRACE"]]) {
  console[method] = (...args) => {
    const text = format(...args).replaceAll("\n", "\r");
    process.stdout.write(`${new Date().toISOString()}\t${currentRequestId || "undefined"}\t${level}\t${text}\n`);
  };
}

/** The response stream a `streamifyResponse` handler writes to: one chunked POST to the Runtime API,
 *  begun at the first write so that `setContentType` (or `HttpResponseStream.from`) can come first. */
class ResponseStream extends Writable {
  constructor(requestId) {
    super();
    this.requestId = requestId;
    this.contentType = "application/octet-stream";
    this.req = null;
    this.answered = null;
  }

  setContentType(type) {
    if (this.req) throw new Error("the content type is set before the first write");
    this.contentType = type;
  }

  get started() {
    return this.req !== null;
  }

  begin() {
    if (this.req) return;
    this.answered = new Promise((resolve, reject) => {
      this.req = http.request(
        {
          host, port, agent, method: "POST", path: `${base}/invocation/${this.requestId}/response`,
          headers: {
            "Content-Type": this.contentType,
            "Lambda-Runtime-Function-Response-Mode": "streaming",
            "Transfer-Encoding": "chunked",
            Trailer: "Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body",
          },
        },
        (res) => { res.resume(); res.on("end", resolve); },
      );
      this.req.on("error", reject);
    });
    // The stream's owner awaits `answered`; an early rejection must not be reported as unhandled.
    this.answered.catch(() => {});
  }

  _write(chunk, encoding, callback) {
    this.begin();
    this.req.write(chunk, encoding, callback);
  }

  _final(callback) {
    this.begin();
    this.req.end(callback);
  }

  /** Ends the response with the error in its trailers, as AWS's runtime reports a failure mid-stream. */
  fail(error) {
    this.begin();
    const payload = errorPayload(error);
    this.req.addTrailers({
      "Lambda-Runtime-Function-Error-Type": payload.errorType,
      "Lambda-Runtime-Function-Error-Body": Buffer.from(JSON.stringify(payload)).toString("base64"),
    });
    this.req.end();
  }
}

globalThis.awslambda = {
  streamifyResponse(handler) {
    handler[streamingMarker] = "response";
    return handler;
  },
  HttpResponseStream: {
    from(stream, metadata) {
      stream.setContentType(preludeType);
      stream.write(JSON.stringify(metadata ?? {}));
      stream.write(new Uint8Array(8));
      return stream;
    },
  },
};

async function loadHandler(name) {
  const root = process.env.LAMBDA_TASK_ROOT || process.cwd();
  const dot = name.lastIndexOf(".");
  if (dot <= 0) {
    return failInit(new Error(`Bad handler ${name}: the handler is module.function`), "Runtime.MalformedHandlerName");
  }
  const modulePath = name.slice(0, dot);
  const functionPath = name.slice(dot + 1);
  const file = ["", ".js", ".mjs", ".cjs"].map((ext) => path.resolve(root, modulePath + ext)).find((candidate) => fs.existsSync(candidate) && fs.statSync(candidate).isFile());
  if (!file) return failInit(new Error(`Cannot find module '${modulePath}'`), "Runtime.ImportModuleError");
  let module;
  try {
    module = await import(pathToFileURL(file).href);
  } catch (error) {
    return failInit(error, error instanceof SyntaxError ? "Runtime.UserCodeSyntaxError" : "Runtime.ImportModuleError");
  }
  // A CommonJS module's exports come as `default` (and, where Node can tell, by name too).
  const handler = module[functionPath] ?? module.default?.[functionPath];
  if (typeof handler !== "function") {
    return failInit(new Error(`${modulePath}.${functionPath} is undefined or not exported`), "Runtime.HandlerNotFound");
  }
  return handler;
}

async function failInit(error, type) {
  await reportError("/init/error", error, type);
  process.exit(1);
}

function makeContext(headers) {
  const deadline = Number(headers["lambda-runtime-deadline-ms"] || 0);
  const clientContext = headers["lambda-runtime-client-context"];
  const identity = headers["lambda-runtime-cognito-identity"];
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
    invokedFunctionArn: headers["lambda-runtime-invoked-function-arn"],
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    awsRequestId: headers["lambda-runtime-aws-request-id"],
    logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
    clientContext: clientContext ? JSON.parse(clientContext) : undefined,
    identity: identity ? JSON.parse(identity) : undefined,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
  };
}

/** A buffered handler's result: its promise, or what it passes to the callback (or `context.succeed`). */
function callBuffered(handler, event, context) {
  return new Promise((resolve, reject) => {
    let settled = false;
    const callback = (error, result) => {
      if (settled) return;
      settled = true;
      error === null || error === undefined ? resolve(result) : reject(error);
    };
    context.succeed = (result) => callback(null, result);
    context.fail = (error) => callback(error ?? new Error("handled"));
    context.done = callback;
    try {
      const returned = handler(event, context, callback);
      if (returned && typeof returned.then === "function") returned.then((result) => callback(null, result), (error) => callback(error ?? new Error("rejected")));
      else if (handler.length < 3 && returned !== undefined) callback(null, returned);
      // A plain function without a callback that returned nothing and did not call context.succeed:
      // its answer is null (waiting would hang until the timeout).
      else if (handler.length < 3) setImmediate(() => callback(null, null));
    } catch (error) {
      callback(error);
    }
  });
}

async function invokeStreaming(handler, event, context, requestId) {
  const stream = new ResponseStream(requestId);
  try {
    await handler(event, stream, context);
    if (!stream.writableEnded) stream.end();
  } catch (error) {
    if (!stream.started) {
      await reportError(`/invocation/${requestId}/error`, error);
      return;
    }
    console.error(`${errorPayload(error).errorType}: ${errorPayload(error).errorMessage}`);
    stream.fail(error);
  }
  await stream.answered;
}

async function main() {
  const handler = await loadHandler(process.env._HANDLER);
  const streaming = handler[streamingMarker] === "response";
  for (;;) {
    const next = await request("GET", "/invocation/next");
    const requestId = next.headers["lambda-runtime-aws-request-id"];
    currentRequestId = requestId;
    const trace = next.headers["lambda-runtime-trace-id"];
    if (trace) process.env._X_AMZN_TRACE_ID = trace;
    else delete process.env._X_AMZN_TRACE_ID;
    const context = makeContext(next.headers);
    let event;
    try {
      event = next.body.length ? JSON.parse(next.body.toString("utf8")) : {};
    } catch (error) {
      await reportError(`/invocation/${requestId}/error`, error, "Runtime.UnmarshalError");
      continue;
    }
    if (streaming) {
      await invokeStreaming(handler, event, context, requestId);
      continue;
    }
    let body;
    try {
      const result = await callBuffered(handler, event, context);
      body = JSON.stringify(result === undefined ? null : result);
    } catch (error) {
      await reportError(`/invocation/${requestId}/error`, error);
      continue;
    }
    await request("POST", `/invocation/${requestId}/response`, { headers: { "Content-Type": "application/json" }, body });
  }
}

main().catch((error) => {
  console.error(`bootstrap failed: ${error?.stack ?? error}`);
  process.exit(1);
});
