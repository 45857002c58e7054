// A streamed Node.js handler (CommonJS) behind a RESPONSE_STREAM Function URL: the status and headers
// first (awslambda.HttpResponseStream.from), then the body as it is written. A gateway job gets its image
// uploaded instead and the manifest written as the response.
"use strict";
const chunkrelay = require("chunkrelay");
const { render } = require("./render.cjs");

exports.handler = awslambda.streamifyResponse(async (event, responseStream, context) => {
  if (chunkrelay.isJob(event)) {
    const manifest = await chunkrelay.upload(event, render(event.params), "image/png");
    responseStream.setContentType("application/json");
    responseStream.end(JSON.stringify(manifest));
    return;
  }
  const query = event.queryStringParameters ?? {};
  if (query.fail === "before") throw new Error("failed before the first byte");
  const stream = awslambda.HttpResponseStream.from(responseStream, {
    statusCode: 200, headers: { "content-type": "text/plain; charset=utf-8", "x-request-id": context.awsRequestId },
  });
  const lines = Number(query.lines ?? 3);
  for (let index = 0; index < lines; index++) {
    stream.write(`line ${index}\n`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  if (query.fail === "during") throw new Error("failed mid-stream");
  stream.end();
});
