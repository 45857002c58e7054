// The ChunkRelay chunk protocol for Node.js generator functions, standard library only (Node 18+).
//
//   const chunkrelay = require("chunkrelay");
//   exports.handler = async (event) => chunkrelay.upload(event, render(event.params), "image/png");
//
// `upload` does what FunctionKit's ChunkUploader does for Swift: splits the image at the job's chunk
// cap, PUTs each chunk with its SHA-256 (RFC 9530 `Content-Digest`) and the attempt's bearer token (a
// few at a time), retries network errors, 5xx and 429 (waiting out `Retry-After`) with a doubling
// backoff, then POSTs the manifest to `complete`. A 4xx other than 429 is final: an `UploadError`.
//
// Under ChunkRelay's runtime `require("chunkrelay")` finds this file (NODE_PATH); from an ES module,
// `createRequire(import.meta.url)("chunkrelay")`. To deploy, copy it beside your handler.
"use strict";
const crypto = require("node:crypto");

class UploadError extends Error {
  constructor(status, body) {
    let code = `http_${status}`;
    let message = body;
    try {
      const error = JSON.parse(body).error;
      code = error.code ?? code;
      message = error.message ?? body;
    } catch {}
    super(`gateway answered ${status} ${code}: ${message}`);
    this.name = "UploadError";
    this.status = status;
    this.code = code;
  }
}

/** Whether `event` is a gateway job's invocation (rather than, say, a Function URL request). */
function isJob(event) {
  return !!event && ["jobId", "chunkSize", "ingestURL", "uploadToken"].every((key) => key in event);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function send(url, body, method, token, headers, { attempts, timeout }) {
  let delay = 100;
  for (let attempt = 1; ; attempt++) {
    let response;
    try {
      response = await fetch(url, {
        method, body, headers: { Authorization: `Bearer ${token}`, ...headers }, signal: AbortSignal.timeout(timeout),
      });
    } catch (error) {
      if (attempt >= attempts) throw error;
      await sleep(delay);
      delay = Math.min(delay * 2, 2000);
      continue;
    }
    const text = await response.text();
    if (response.ok) return text;
    if ((response.status < 500 && response.status !== 429) || attempt >= attempts) throw new UploadError(response.status, text);
    const retryAfter = Number(response.headers.get("retry-after"));
    await sleep(Number.isFinite(retryAfter) && retryAfter > 0 ? Math.max(delay, retryAfter * 1000) : delay);
    delay = Math.min(delay * 2, 2000);
  }
}

/** Uploads `image` (a Buffer or Uint8Array) for the job `event` names, completes the job, and returns the manifest. */
async function upload(event, image, contentType = "image/png", { attempts = 5, parallelism = 4, timeout = 30000 } = {}) {
  if (!isJob(event)) throw new TypeError("the event is not a ChunkRelay job (it needs jobId, chunkSize, ingestURL and uploadToken)");
  const size = Number(event.chunkSize);
  if (!(size > 0)) throw new RangeError("chunkSize must be positive");
  const bytes = Buffer.isBuffer(image) ? image : Buffer.from(image.buffer, image.byteOffset, image.byteLength);
  const count = Math.max(1, Math.ceil(bytes.length / size));
  const options = { attempts, timeout };
  let next = 0;
  // Chunks may arrive out of order; the gateway takes them so.
  async function worker() {
    while (next < count) {
      const index = next++;
      const part = bytes.subarray(index * size, Math.min(bytes.length, (index + 1) * size));
      const digest = crypto.createHash("sha256").update(part).digest("base64");
      await send(`${event.ingestURL}/chunks/${index}`, part, "PUT", event.uploadToken,
        { "Content-Digest": `sha-256=:${digest}:`, "Content-Type": "application/octet-stream" }, options);
    }
  }
  await Promise.all(Array.from({ length: Math.min(Math.max(1, parallelism), count) }, worker));
  const manifest = { chunks: count, bytes: bytes.length, sha256: crypto.createHash("sha256").update(bytes).digest("hex"), contentType };
  await send(`${event.ingestURL}/complete`, JSON.stringify(manifest), "POST", event.uploadToken, { "Content-Type": "application/json" }, options);
  return manifest;
}

module.exports = { upload, isJob, UploadError };
