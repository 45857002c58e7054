// Drives headless Chromium over the DevTools protocol: loads a page, waits until a JavaScript condition
// holds, then writes the DOM (and, if asked, a screenshot). For pages that keep a connection open
// (an EventSource), which `--dump-dom` with a virtual-time budget waits on for ever.
//
//   node --experimental-websocket cdp.mjs CHROMIUM URL CONDITION DOM_OUT [PNG_OUT] [TIMEOUT_SECONDS]
//
// Exits 0 once CONDITION held and the DOM was written; 1 (with the DOM written anyway) when it did not
// hold within the timeout.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [chromium, url, condition, domOut, pngOut, timeoutText] = process.argv.slice(2);
const timeout = Number(timeoutText || 60) * 1000;
const profile = mkdtempSync(join(tmpdir(), "cdp-"));
const browser = spawn(chromium, [
  "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars", `--user-data-dir=${profile}`,
  "--remote-debugging-port=0", "--window-size=1500,1000", "about:blank",
], { stdio: "ignore" });
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const deadline = Date.now() + timeout;
let status = 1;
try {
  const portFile = join(profile, "DevToolsActivePort");
  while (!existsSync(portFile) || readFileSync(portFile, "utf8").split("\n").length < 2) {
    if (Date.now() > deadline) throw new Error("Chromium did not open its DevTools port");
    await sleep(50);
  }
  const port = readFileSync(portFile, "utf8").split("\n")[0];
  const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
  const page = targets.find((t) => t.type === "page");
  const socket = new WebSocket(page.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => { socket.onopen = resolve; socket.onerror = reject; });
  let next = 1;
  const waiting = new Map();
  socket.onmessage = (message) => {
    const reply = JSON.parse(message.data);
    if (reply.id && waiting.has(reply.id)) { waiting.get(reply.id)(reply); waiting.delete(reply.id); }
  };
  const send = (method, params = {}) => new Promise((resolve) => {
    const id = next++;
    waiting.set(id, resolve);
    socket.send(JSON.stringify({ id, method, params }));
  });
  const evaluate = async (expression) => (await send("Runtime.evaluate", { expression, returnByValue: true })).result?.result?.value;
  await send("Page.enable");
  await send("Page.navigate", { url });
  while (Date.now() < deadline) {
    if (await evaluate(`(() => { try { return Boolean(${condition}); } catch (e) { return false; } })()`)) { status = 0; break; }
    await sleep(100);
  }
  writeFileSync(domOut, await evaluate("document.documentElement.outerHTML") || "");
  if (pngOut) {
    const shot = await send("Page.captureScreenshot", { format: "png", captureBeyondViewport: false });
    writeFileSync(pngOut, Buffer.from(shot.result.data, "base64"));
  }
  socket.close();
} catch (error) {
  console.error(String(error));
  status = 1;
} finally {
  // Chromium writes to its profile until it is gone: wait for it before removing the folder.
  const exited = new Promise((resolve) => browser.once("exit", resolve));
  browser.kill("SIGKILL");
  await Promise.race([exited, sleep(5000)]);
  try { rmSync(profile, { recursive: true, force: true, maxRetries: 5 }); } catch (error) { console.error(String(error)); }
}
process.exit(status);
