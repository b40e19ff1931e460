// Starts the real aura binary on a free loopback port with a fresh data
// directory, for the SDK's tests; `admin(method, path, body)` calls it with
// the admin token.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { createServer, connect } from "node:net";

const root = resolve(import.meta.dirname, "../../../..");
const target = process.env.CARGO_TARGET_DIR ?? join(root, "target");
export const AURA = process.env.AURA_BIN ?? join(target, "debug/aura");
export const wasm = (name) => join(process.env.AURA_WASM_DIR ?? join(target, "wasm32-wasip2/release"), name + ".wasm");

export async function startAura(extra = []) {
  const dataDir = mkdtempSync(join(tmpdir(), "aura-sdk-"));
  const child = spawn(AURA, ["serve", "--addr", "127.0.0.1:0", "--s3-addr", "off", "--auth-rate-limit", "0", "--data-dir", dataDir, ...extra], {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, AURA_LOG: process.env.AURA_LOG || "warn" },
  });
  const url = await new Promise((ok, fail) => {
    child.once("exit", (code) => fail(new Error(`aura exited with ${code}`)));
    createInterface({ input: child.stdout }).on("line", (line) => {
      const found = line.match(/^aura: listening on (\S+)/);
      if (found) ok(found[1]);
    });
  });
  const token = readFileSync(join(dataDir, "admin.token"), "utf8").trim();
  const admin = async (method, path, body) => {
    const response = await fetch(url + path, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  };
  /** The newest mail to `to` in the dev outbox. */
  const mail = async (to) => {
    for (let i = 0; i < 100; i++) {
      const found = (await admin("GET", "/api/admin/outbox")).body.messages.find((m) => m.to === to);
      if (found) return found;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`no mail to ${to}`);
  };
  return { url, token, dataDir, admin, mail, stop: () => child.kill("SIGTERM") };
}

/** A fetch that counts the requests to each path. */
export function countingFetch() {
  const counts = new Map();
  const counted = (input, init) => {
    const path = new URL(typeof input === "string" ? input : input.url).pathname;
    counts.set(path, (counts.get(path) ?? 0) + 1);
    return fetch(input, init);
  };
  return { fetch: counted, count: (path) => counts.get(path) ?? 0 };
}

/**
 * A TCP proxy in front of `url` whose connections the test can cut:
 * `cut()` drops them, `accepting` refuses new ones while false, and `sent`
 * holds what clients sent, chunk by chunk (request heads come as chunks of
 * their own).
 */
export async function cuttableProxy(url) {
  const target = new URL(url);
  const sockets = new Set();
  const sent = [];
  const proxy = {
    accepting: true,
    sent,
    cut() {
      for (const socket of sockets) socket.destroy();
      sockets.clear();
    },
    close() {
      proxy.cut();
      return new Promise((ok) => server.close(ok));
    },
  };
  const server = createServer((client) => {
    if (!proxy.accepting) return client.destroy();
    client.on("data", (chunk) => sent.push(chunk.toString("latin1")));
    const upstream = connect(Number(target.port), target.hostname);
    sockets.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    const drop = () => { client.destroy(); upstream.destroy(); };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  // A test that fails before closing it must not keep the process alive.
  server.unref();
  proxy.url = `http://127.0.0.1:${server.address().port}`;
  return proxy;
}

/** Waits until `check()` holds (polling), or fails naming `what`. */
export async function until(check, what, ms = 5000) {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
