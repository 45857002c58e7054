/// The inspector's page: one self-contained file (no script, style or font from elsewhere), reading
/// `/inspect/api/…`. A `?token=` in its address is passed on to the API; `?job=ID` or
/// `?invocation=ID` (and `&attempt=N`, one retry of an `Event`) opens that one's detail.
enum InspectorPage {
    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>ChunkRelay inspector</title>
<style>
  body { font: 13px/1.4 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f4f5f7; }
  header { display: flex; gap: 16px; align-items: center; padding: 10px 16px; background: #1d2330; color: #fff; }
  header h1 { font-size: 15px; margin: 0; }
  header input { flex: 1; max-width: 360px; padding: 4px 8px; border-radius: 4px; border: 0; }
  .badge { padding: 2px 8px; border-radius: 10px; background: #3b4252; font-size: 12px; }
  .badge.on { background: #b5462f; }
  .badge.live { background: #2f7d4f; }
  main { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 12px; padding: 12px; }
  section { background: #fff; border-radius: 6px; padding: 8px 12px; box-shadow: 0 1px 2px #0002; margin-bottom: 12px; overflow-x: auto; }
  section h2 { font-size: 13px; margin: 4px 0 8px; text-transform: uppercase; letter-spacing: .04em; color: #5b6475; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: 3px 6px; border-bottom: 1px solid #eceef2; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; max-width: 180px; }
  tr[data-job], tr[data-invocation] { cursor: pointer; }
  tr.selected { background: #e6efff; }
  .state-failed, .status-functionError, .status-timedOut, .status-environmentFailure, .status-refused { color: #b5462f; font-weight: 600; }
  .state-ready, .state-done, .status-success { color: #2f7d4f; }
  .state-running, .status-running { color: #1f5fbf; }
  pre { background: #1d2330; color: #e6e9ef; padding: 8px; border-radius: 4px; overflow: auto; max-height: 420px; font-size: 12px; }
  .timeline { list-style: none; padding: 0; margin: 0; }
  .timeline li { padding: 2px 0; border-left: 3px solid #c9ced8; padding-left: 8px; }
  .timeline li.chunk { border-color: #1f5fbf; }
  .timeline .at { color: #5b6475; display: inline-block; min-width: 64px; }
  .bar { display: flex; height: 10px; gap: 1px; margin: 6px 0; }
  .bar span { flex: 1; background: #1f5fbf; }
  button { padding: 4px 10px; border-radius: 4px; border: 1px solid #1f5fbf; background: #fff; color: #1f5fbf; cursor: pointer; }
  .muted { color: #5b6475; }
</style>
</head>
<body>
<header>
  <h1>ChunkRelay inspector</h1>
  <input id="filter" placeholder="filter: function, state, id…" autocomplete="off">
  <span id="faults-badge" class="badge">faults off</span>
  <span id="connection" class="badge">connecting…</span>
</header>
<main>
  <div>
    <section><h2>Queue</h2><table id="queue" data-count="0"><thead><tr><th>#</th><th>job</th><th>function</th><th>delivery</th><th>waiting</th></tr></thead><tbody></tbody></table></section>
    <section><h2>Jobs</h2><table id="jobs"><thead><tr><th>job</th><th>function</th><th>delivery</th><th>state</th><th>attempt</th><th>chunks</th><th>bytes</th><th>created</th><th>image</th><th>error</th></tr></thead><tbody></tbody></table></section>
    <section><h2>Invocations</h2><table id="invocations"><thead><tr><th>request id</th><th>attempt</th><th>function</th><th>job</th><th>status</th><th>duration</th><th>billed</th><th>init</th><th>max memory</th></tr></thead><tbody></tbody></table></section>
  </div>
  <div>
    <section><h2>Detail</h2><div id="detail" class="muted">Pick a job or an invocation.</div></section>
    <section><h2>Functions</h2><table id="functions"><thead><tr><th>name</th><th>runtime</th><th>timeout</th><th>memory</th><th>environments</th><th>URL</th></tr></thead><tbody></tbody></table></section>
    <section><h2>Faults injected</h2><table id="faults"><thead><tr><th>when</th><th>server</th><th>request</th><th>fault</th><th>by</th></tr></thead><tbody></tbody></table></section>
  </div>
</main>
<script>
"use strict";
const params = new URLSearchParams(location.search);
const token = params.get("token");
const api = (path) => "/inspect/api/" + path + (token ? (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : "");
let snapshot = null;
let selected = params.get("job") ? {kind: "job", id: params.get("job")} : params.get("invocation") ? {kind: "invocation", id: params.get("invocation"), attempt: Number(params.get("attempt")) || undefined} : null;

const text = (value) => value === undefined || value === null ? "" : String(value);
const escape = (value) => text(value).replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;"}[c]));
const when = (seconds) => seconds ? new Date(seconds * 1000).toLocaleTimeString() : "";
const ms = (value) => value === undefined || value === null ? "" : value.toFixed(1) + " ms";
const size = (bytes) => bytes >= 1 << 20 ? (bytes / (1 << 20)).toFixed(1) + " MiB" : bytes >= 1024 ? (bytes / 1024).toFixed(1) + " KiB" : bytes + " B";
const matches = (values) => {
  const query = document.getElementById("filter").value.trim().toLowerCase();
  return !query || values.some((v) => text(v).toLowerCase().includes(query));
};
const rows = (id, items, render) => {
  const body = document.querySelector("#" + id + " tbody");
  body.innerHTML = items.map(render).join("");
  document.getElementById(id).dataset.count = String(items.length);
};

function render() {
  if (!snapshot) return;
  const faultsBadge = document.getElementById("faults-badge");
  faultsBadge.textContent = snapshot.faultsOn ? "faults on" : "faults off";
  faultsBadge.className = "badge" + (snapshot.faultsOn ? " on" : "");
  const now = Date.now() / 1000;
  rows("queue", snapshot.queue.filter((j) => matches([j.id, j.function, j.delivery])), (j) =>
    `<tr data-job="${escape(j.id)}"><td>${j.position}</td><td>${escape(j.id)}</td><td>${escape(j.function)}</td><td>${escape(j.delivery)}</td><td>${Math.max(0, now - j.createdAt).toFixed(0)} s</td></tr>`);
  rows("jobs", snapshot.jobs.filter((j) => matches([j.id, j.function, j.delivery, j.state, j.error && j.error.code])), (j) =>
    `<tr data-job="${escape(j.id)}" class="${selected && selected.id === j.id ? "selected" : ""}"><td>${escape(j.id)}</td><td>${escape(j.function)}</td><td>${escape(j.delivery)}</td>` +
    `<td class="state-${escape(j.state)}">${escape(j.state)}</td><td>${j.attempt}</td><td>${j.chunks}</td><td>${size(j.bytes)}</td><td>${when(j.createdAt)}</td>` +
    `<td>${escape(j.image)}</td><td>${escape(j.error ? j.error.code : "")}</td></tr>`);
  rows("invocations", snapshot.invocations.filter((i) => matches([i.requestId, i.function, i.jobId, i.status, i.errorType])), (i) =>
    `<tr data-invocation="${escape(i.requestId)}" data-attempt="${i.attempt}" class="${selected && selected.id === i.requestId && (!selected.attempt || selected.attempt === i.attempt) ? "selected" : ""}">` +
    `<td>${escape(i.requestId)}</td><td>${i.attempt}</td><td>${escape(i.function)}</td><td>${escape(i.jobId)}</td>` +
    `<td class="status-${escape(i.status)}">${escape(i.status)}${i.errorType ? " (" + escape(i.errorType) + ")" : ""}</td><td>${ms(i.durationMs)}</td>` +
    `<td>${i.billedDurationMs === undefined ? "" : i.billedDurationMs + " ms"}</td><td>${ms(i.initDurationMs)}</td><td>${i.maxMemoryUsedMB === undefined ? "" : i.maxMemoryUsedMB + " / " + i.memorySizeMB + " MB"}</td></tr>`);
  rows("functions", snapshot.functions.filter((f) => matches([f.name, f.runtime])), (f) =>
    `<tr><td>${escape(f.name)}</td><td>${escape(f.runtime)}</td><td>${f.timeout} s</td><td>${f.memorySize} MB</td><td>${f.live} running, ${f.warm} warm` +
    `${f.reservedConcurrency ? " (max " + f.reservedConcurrency + ")" : ""}</td><td>${f.url ? escape(f.url) + " " + escape(f.invokeMode) : ""}</td></tr>`);
  rows("faults", snapshot.faults.filter((f) => matches([f.server, f.path, f.fault, f.function])), (f) =>
    `<tr><td>${when(f.time)}</td><td>${escape(f.server)}</td><td>${escape(f.method)} ${escape(f.path)}</td><td>${escape(f.fault)}</td><td>${escape(f.source)}</td></tr>`);
}

async function fetchJSON(path, options) {
  const response = await fetch(api(path), options);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error ? body.error.code + ": " + body.error.message : response.status);
  return body;
}

async function showDetail() {
  const detail = document.getElementById("detail");
  if (!selected) return;
  try {
    if (selected.kind === "job") {
      const d = await fetchJSON("jobs/" + encodeURIComponent(selected.id));
      const start = d.timeline.length ? d.timeline[0].time : d.job.createdAt;
      const chunks = d.timeline.filter((e) => e.chunk !== undefined && e.chunk !== null);
      detail.dataset.kind = "job";
      detail.dataset.id = d.job.id;
      detail.innerHTML =
        `<p><b>job ${escape(d.job.id)}</b> · ${escape(d.job.function)} · ${escape(d.job.delivery)} · <span class="state-${escape(d.job.state)}">${escape(d.job.state)}</span>` +
        ` · attempt ${d.job.attempt} · ${d.job.chunks} chunks, ${size(d.job.bytes)} <button id="replay">Replay</button></p>` +
        `<p class="muted">params ${escape(JSON.stringify(d.params))}<br>sha256 ${escape(d.job.sha256 || "not yet")}<br>image ${escape(d.job.image || "(stream)")}, ${size(d.job.delivered)} delivered` +
        `${d.job.error ? "<br>error " + escape(d.job.error.code + ": " + d.job.error.message) : ""}</p>` +
        `<div class="bar" id="chunk-bar" data-chunks="${chunks.length}">${chunks.map((c) => `<span title="chunk ${c.chunk}: ${size(c.bytes)}"></span>`).join("")}</div>` +
        `<ul class="timeline" id="timeline">${d.timeline.map((e) =>
          `<li class="${e.chunk !== undefined && e.chunk !== null ? "chunk" : ""}"><span class="at">+${(e.time - start).toFixed(3)} s</span> ${escape(e.event)} <span class="muted">→ ${escape(e.state)}</span></li>`).join("")}</ul>`;
    } else {
      const d = await fetchJSON("invocations/" + encodeURIComponent(selected.id) + (selected.attempt ? "?attempt=" + selected.attempt : ""));
      detail.dataset.kind = "invocation";
      detail.dataset.id = d.requestId;
      detail.innerHTML =
        `<p><b>invocation ${escape(d.requestId)}</b>${d.attempt > 1 ? " (attempt " + d.attempt + ")" : ""} · ${escape(d.function)} · <span class="status-${escape(d.status)}">${escape(d.status)}</span>` +
        `${d.jobId ? " · job " + escape(d.jobId) : ""} <button id="replay">Replay</button></p>` +
        `<p class="muted">duration ${ms(d.durationMs)} · billed ${text(d.billedDurationMs)} ms · init ${ms(d.initDurationMs) || "warm"} · max memory ${text(d.maxMemoryUsedMB)} / ${d.memorySizeMB} MB` +
        `${d.message ? "<br>" + escape(d.message) : ""}</p>` +
        `<pre id="log">${escape(d.log.join("\n"))}</pre><p class="muted">event</p><pre id="payload">${escape(d.payload)}</pre>`;
    }
    document.getElementById("replay").onclick = replay;
  } catch (error) {
    detail.textContent = String(error.message || error);
  }
}

async function replay() {
  const button = document.getElementById("replay");
  button.disabled = true;
  try {
    const result = await fetchJSON("replay/" + encodeURIComponent(selected.id), {method: "POST", headers: token ? {"Authorization": "Bearer " + token} : {}});
    button.textContent = result.kind === "job" ? "replayed as job " + result.job.id : "invoked " + result.function + " again";
    if (result.kind === "job") { selected = {kind: "job", id: result.job.id}; setTimeout(showDetail, 500); }
  } catch (error) {
    button.textContent = String(error.message || error);
  }
}

document.addEventListener("click", (event) => {
  const row = event.target.closest("tr[data-job], tr[data-invocation]");
  if (!row) return;
  selected = row.dataset.job ? {kind: "job", id: row.dataset.job} : {kind: "invocation", id: row.dataset.invocation, attempt: Number(row.dataset.attempt)};
  render();
  showDetail();
});
document.getElementById("filter").addEventListener("input", render);

const source = new EventSource(api("events"));
const connection = document.getElementById("connection");
source.addEventListener("snapshot", (event) => {
  snapshot = JSON.parse(event.data);
  connection.textContent = "live";
  connection.className = "badge live";
  render();
  showDetail();
});
source.onerror = () => { connection.textContent = "reconnecting…"; connection.className = "badge"; };
</script>
</body>
</html>
"""#
}
