// How long a change takes to reach 100 subscribers on one client: from
// before the write (an admin HTTP call) until all 100 have seen it, 200
// writes a round, half the subscribers filtered. Aura twice: live queries
// (each also keeps its sorted list) and plain subscriptions, the
// like-for-like with PocketBase's subscribe. With POCKETBASE_BIN (the
// official binary) PocketBase runs beside it, rounds A B A B, each on a
// fresh server; prints p50/p99 (median over rounds, range) and the ratios.
import { execFileSync, spawn } from "node:child_process";
import { setMaxListeners } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import PocketBase from "pocketbase";
import { createClient, memoryStore } from "../dist/index.js";
import { AURA, startAura } from "../test/aura.mjs";

const ROUNDS = 6;
const WRITES = 200;
const SUBSCRIBERS = 100;
const PB = process.env.POCKETBASE_BIN;
const events = { name: "events", fields: [{ name: "n", type: "number" }], listRule: "", viewRule: "" };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Times each write until `seen(record)` holds; both systems are polled the
// same way, so the comparison does not depend on how the client waits.
async function measure(write, seen) {
  const times = [];
  for (let n = 0; n < WRITES; n++) {
    const started = performance.now();
    const made = await write(n);
    if (!made?.id) throw new Error(`write failed: ${JSON.stringify(made)}`);
    while (!seen(made)) await new Promise((r) => setImmediate(r));
    times.push(performance.now() - started);
  }
  return times;
}

/** A callback per subscriber that counts, per record id, how many saw it. */
function counter() {
  const seen = new Map();
  return { saw: (id) => seen.set(id, (seen.get(id) ?? 0) + 1), all: (made) => seen.get(made.id) === SUBSCRIBERS };
}

async function auraLive() {
  const aura = await startAura();
  try {
    await aura.admin("POST", "/api/collections", events);
    const client = createClient(aura.url, { store: memoryStore() });
    const queries = Array.from({ length: SUBSCRIBERS }, (_, i) =>
      client.records("events").live(i % 2 ? { sort: "-n", perPage: 50 } : { filter: "n >= 0", sort: "-n", perPage: 50 }),
    );
    await Promise.all(queries.map((q) => q.ready));
    const times = await measure(
      async (n) => (await aura.admin("POST", "/api/collections/events/records", { n })).body,
      (made) => queries.every((q) => q.current.items[0]?.id === made.id),
    );
    for (const q of queries) q.close();
    return times;
  } finally {
    aura.stop();
  }
}

async function auraSubscribe() {
  const aura = await startAura();
  try {
    await aura.admin("POST", "/api/collections", events);
    const client = createClient(aura.url, { store: memoryStore() });
    const count = counter();
    const subs = Array.from({ length: SUBSCRIBERS }, (_, i) =>
      client.records("events").subscribe(i % 2 ? {} : { filter: "n >= 0" }, (e) => count.saw(e.record.id)),
    );
    await Promise.all(subs.map((s) => s.ready));
    const times = await measure(async (n) => (await aura.admin("POST", "/api/collections/events/records", { n })).body, count.all);
    for (const s of subs) s.close();
    return times;
  } finally {
    aura.stop();
  }
}

async function freePort() {
  const server = createServer();
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  const { port } = server.address();
  await new Promise((ok) => server.close(ok));
  return port;
}

async function pocketBaseSubscribe() {
  // Its data in a fresh folder; pb_migrations (it writes one per new
  // collection) and pb_hooks default to beside it, so they are fresh too.
  const root = mkdtempSync(join(tmpdir(), "pb-bench-"));
  const dir = join(root, "pb_data");
  const [email, password] = ["bench@example.com", "bench-password-1"];
  execFileSync(PB, ["superuser", "upsert", email, password, "--dir", dir], { stdio: "ignore" });
  const url = `http://127.0.0.1:${await freePort()}`;
  const child = spawn(PB, ["serve", "--http", url.slice(7), "--dir", dir], { stdio: "ignore" });
  const exited = new Promise((r) => child.once("exit", r));
  let pb;
  try {
    for (let i = 0; !(await fetch(url + "/api/health").then((r) => r.ok, () => false)); i++) {
      if (i > 500) throw new Error("pocketbase did not start");
      await sleep(20);
    }
    const call = async (path, body, token) => {
      const headers = { "content-type": "application/json", ...(token ? { authorization: token } : {}) };
      const response = await fetch(url + path, { method: "POST", headers, body: JSON.stringify(body) });
      const answer = await response.json();
      if (!response.ok) throw new Error(`${path}: ${response.status} ${JSON.stringify(answer)}`);
      return answer;
    };
    const { token } = await call("/api/collections/_superusers/auth-with-password", { identity: email, password });
    await call("/api/collections", { ...events, type: "base" }, token);
    // One client; its subscriptions share one SSE connection.
    pb = new PocketBase(url);
    const count = counter();
    for (let i = 0; i < SUBSCRIBERS; i++) {
      await pb.collection("events").subscribe("*", (e) => count.saw(e.record.id), i % 2 ? {} : { filter: "n >= 0" });
    }
    return await measure((n) => call("/api/collections/events/records", { n }, token), count.all);
  } finally {
    await pb?.realtime.unsubscribe();
    child.kill("SIGTERM");
    await exited;
    rmSync(root, { recursive: true, force: true });
  }
}

// The p50 and p99 of one round.
function percentiles(times) {
  times.sort((a, b) => a - b);
  const at = (p) => times[Math.min(times.length - 1, Math.floor((p / 100) * times.length))];
  return { p50: at(50), p99: at(99) };
}

// "median (min–max)" over rounds.
function spread(values, digits, unit = "") {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length / 2;
  const median = s.length % 2 ? s[Math.floor(mid)] : (s[mid - 1] + s[mid]) / 2;
  return `${median.toFixed(digits)}${unit} (${s[0].toFixed(digits)}–${s.at(-1).toFixed(digits)})`;
}

// PocketBase's SDK puts each subscriber's listener on its one EventSource.
setMaxListeners(SUBSCRIBERS);
if (PB && typeof EventSource === "undefined") throw new Error("PocketBase's SDK needs EventSource: run node with --experimental-eventsource");
const systems = {
  [`Aura, ${SUBSCRIBERS} live queries`]: auraLive,
  [`Aura, ${SUBSCRIBERS} subscriptions`]: auraSubscribe,
};
if (PB) systems[`${execFileSync(PB, ["--version"], { encoding: "utf8" }).trim()}, ${SUBSCRIBERS} subscriptions`] = pocketBaseSubscribe;
else console.log("POCKETBASE_BIN not set: measuring Aura alone");
console.log(`aura: ${AURA}; ${ROUNDS} rounds of ${WRITES} writes, write → all ${SUBSCRIBERS} have seen it`);

const results = Object.fromEntries(Object.keys(systems).map((name) => [name, []]));
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, run] of Object.entries(systems)) results[name].push(percentiles(await run()));
}
const names = Object.keys(results);
for (const name of names) {
  const r = results[name];
  console.log(`${name}: p50 ${spread(r.map((x) => x.p50), 1, " ms")}, p99 ${spread(r.map((x) => x.p99), 1, " ms")}`);
}
// Ratios pair each Aura round with the PocketBase round that followed it.
if (PB) {
  const peer = results[names[2]];
  for (const name of names.slice(0, 2)) {
    const ratio = (p) => spread(results[name].map((x, i) => x[p] / peer[i][p]), 2);
    console.log(`${name} / PocketBase: p50 ${ratio("p50")}, p99 ${ratio("p99")}`);
  }
}
