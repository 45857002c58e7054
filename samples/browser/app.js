// The ChunkRelay browser sample: create a stream-mode job and follow its events with the browser's own
// EventSource (which resumes with Last-Event-ID by itself), or (direct delivery) point EventSource
// straight at map-render's Function URL; either way assemble the chunks and verify the SHA-256.
"use strict";

const $ = (id) => document.getElementById(id);

function setResult(state, text, sha256) {
  const result = $("result");
  result.dataset.state = state;
  if (sha256) result.dataset.sha256 = sha256;
  result.textContent = text;
}

function hex(buffer) {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
}

function decodeBase64(text) {
  const binary = atob(text.replace(/\s/g, ""));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

// The event stream to follow: the job's, through the gateway, or map-render's own URL (no job, no
// queue: the function renders for this request and sends the map itself, same events).
async function openEvents(params, delivery) {
  if (delivery === "direct") {
    $("status").textContent = "Asking the gateway for map-render's Function URL…";
    const listed = await (await fetch("/v1/functions")).json();
    const url = listed.functions.find((f) => f.name === "map-render")?.url;
    if (!url) throw new Error("map-render has no Function URL");
    return new EventSource(`${url}?${new URLSearchParams(params)}`);
  }
  $("status").textContent = "Creating the job…";
  const response = await fetch("/v1/jobs", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ function: "map-render", params, delivery: "stream" }),
  });
  const body = await response.json();
  if (!response.ok) throw new Error(`${body.error.code}: ${body.error.message}`);
  return new EventSource(body.events);
}

// Draws the map from the chunks so far: a PNG cut short still decodes its first rows, so the map
// grows down the page as chunks arrive. It is marked unverified until `done` checked the digest.
let partialURL = null;
function drawSoFar(chunks) {
  if (partialURL) URL.revokeObjectURL(partialURL);
  partialURL = URL.createObjectURL(new Blob(chunks, { type: "image/png" }));
  $("map").src = partialURL;
  $("map").hidden = false;
  $("map").dataset.partial = "true";
  $("map").dataset.draws = String(chunks.length);
}

async function generate(params, delivery) {
  $("start").disabled = true;
  $("map").hidden = true;
  $("progress").value = 0;
  setResult("running", "");
  $("result").dataset.delivery = delivery;

  const chunks = [];
  let received = 0;
  let uploaded = 0;
  const events = await openEvents(params, delivery);

  return await new Promise((resolve, reject) => {
    events.addEventListener("queued", (e) => {
      $("status").textContent = `Queued: position ${JSON.parse(e.data).position}`;
    });
    events.addEventListener("started", () => {
      $("status").textContent = "Rendering…";
    });
    events.addEventListener("progress", (e) => {
      uploaded = Math.max(uploaded, JSON.parse(e.data).bytes);
      $("progress").max = Math.max(uploaded, 1);
    });
    events.addEventListener("retrying", (e) => {
      // The attempt that sent the chunks so far failed; the retry sends its own from chunk 0.
      chunks.length = 0;
      $("map").hidden = true;
      received = 0;
      $("status").textContent = `Retrying (attempt ${JSON.parse(e.data).attempt})…`;
    });
    events.addEventListener("chunk", (e) => {
      // The id is the chunk index, prefixed with the attempt after a retry ("2:5").
      const index = Number(e.lastEventId.split(":").pop());
      if (index !== chunks.length) return; // never the case: the gateway sends in order and resumes after the last id
      const bytes = decodeBase64(e.data);
      chunks.push(bytes);
      received += bytes.length;
      drawSoFar(chunks);
      uploaded = Math.max(uploaded, received);
      $("progress").max = uploaded;
      $("progress").value = received;
      $("status").textContent = `Receiving: ${(received / 1e6).toFixed(1)} MB in ${chunks.length} chunks`;
    });
    events.addEventListener("done", async (e) => {
      events.close();
      const done = JSON.parse(e.data);
      const blob = new Blob(chunks, { type: done.contentType });
      const digest = hex(await crypto.subtle.digest("SHA-256", await blob.arrayBuffer()));
      $("progress").max = 1;
      $("progress").value = 1;
      if (digest === done.sha256 && blob.size === done.bytes) {
        $("map").src = URL.createObjectURL(blob);
        $("map").hidden = false;
        delete $("map").dataset.partial;
        $("status").textContent = `Done: ${(done.bytes / 1e6).toFixed(1)} MB in ${done.chunks} chunks`;
        setResult("verified", `sha256 ${digest} verified`, digest);
      } else {
        // Never show bytes that failed verification as the map.
        $("map").hidden = true;
        setResult("mismatch", `sha256 ${digest} does not match ${done.sha256}`, digest);
      }
      resolve();
    });
    events.addEventListener("failed", (e) => {
      events.close();
      const error = JSON.parse(e.data);
      reject(new Error(`${error.code}: ${error.message}`));
    });
    if (delivery === "direct") {
      // A direct stream cannot resume (the function would render again): a dropped one is a failure.
      events.onerror = () => {
        events.close();
        reject(new Error("the connection to the function's URL broke off"));
      };
    }
  });
}

function start(params, delivery) {
  generate(params, delivery)
    .catch((error) => {
      $("map").hidden = true;
      $("status").textContent = "Failed.";
      setResult("failed", String(error.message || error));
    })
    .finally(() => {
      $("start").disabled = false;
    });
}

$("form").addEventListener("submit", (event) => {
  event.preventDefault();
  start({ width: Number($("width").value), height: Number($("height").value), seed: Number($("seed").value) }, $("delivery").value);
});

// ?width=…&height=…&seed=…&delivery=…&autostart=1 fills the form and starts at once (used by the headless test).
const query = new URLSearchParams(location.search);
for (const key of ["width", "height", "seed", "delivery"]) if (query.has(key)) $(key).value = query.get(key);
if (query.get("autostart") === "1") $("form").requestSubmit();
