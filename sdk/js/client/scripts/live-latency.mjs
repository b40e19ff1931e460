// How long a change takes to reach 100 live queries on one client: from
// before the write until the last of them shows it, over 200 writes, half
// the queries filtered. Prints p50 and p99 (and the range) in ms.
import { createClient, memoryStore } from "../dist/index.js";
import { startAura } from "../test/aura.mjs";

const aura = await startAura();
try {
  await aura.admin("POST", "/api/collections", { name: "events", fields: [{ name: "n", type: "number" }], listRule: "", viewRule: "" });
  const client = createClient(aura.url, { store: memoryStore() });
  const queries = Array.from({ length: 100 }, (_, i) =>
    client.records("events").live(i % 2 ? { sort: "-n", perPage: 50 } : { filter: "n >= 0", sort: "-n", perPage: 50 }),
  );
  while (queries.some((q) => q.current.loading)) await new Promise((r) => setTimeout(r, 10));
  const times = [];
  for (let n = 0; n < 200; n++) {
    const started = performance.now();
    const made = (await aura.admin("POST", "/api/collections/events/records", { n })).body;
    while (!queries.every((q) => q.current.items[0]?.id === made.id)) await new Promise((r) => setImmediate(r));
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  const at = (p) => times[Math.min(times.length - 1, Math.floor((p / 100) * times.length))].toFixed(1);
  console.log(`100 live queries, write → every list: p50 ${at(50)} ms, p99 ${at(99)} ms (range ${times[0].toFixed(1)}–${times.at(-1).toFixed(1)} ms)`);
  for (const q of queries) q.close();
} finally {
  aura.stop();
}
