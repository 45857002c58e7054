// A buffered Node.js handler (an ES module): a gateway job gets its image uploaded with ChunkRelay's
// chunk module; an HTTP request (Function URL or HTTP API, payload 2.0) gets a JSON answer.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const chunkrelay = require("chunkrelay");
const { render } = require("./render.cjs");

export const handler = async (event, context) => {
  if (chunkrelay.isJob(event)) {
    const manifest = await chunkrelay.upload(event, render(event.params), "image/png");
    console.log(`uploaded ${manifest.bytes} bytes in ${manifest.chunks} chunks`);
    return manifest;
  }
  const http = event?.requestContext?.http;
  return {
    statusCode: 200,
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      runtime: "node", method: http?.method, path: event?.rawPath, proxy: event?.pathParameters?.proxy ?? null,
      stage: process.env.STAGE, trace: process.env._X_AMZN_TRACE_ID, requestId: context.awsRequestId,
    }),
  };
};
