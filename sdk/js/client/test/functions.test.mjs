// Functions and storage through the SDK: answers, streamed answers chunk by
// chunk, background runs; uploads with progress and downloads.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createClient, memoryStore, AuraError } from "../dist/index.js";
import { startAura, wasm } from "./aura.mjs";

let aura, client;
before(async () => {
  aura = await startAura();
  for (const name of ["hello", "stream", "echo"]) {
    const form = new FormData();
    form.append("component", new Blob([readFileSync(wasm(name))]), `${name}.wasm`);
    const deployed = await fetch(`${aura.url}/api/admin/functions/${name}/versions`, {
      method: "POST", headers: { authorization: `Bearer ${aura.token}` }, body: form,
    });
    assert.equal(deployed.status, 201, await deployed.text());
  }
  await aura.admin("POST", "/api/admin/storage/buckets", { name: "files", viewRule: "", createRule: "", updateRule: "", deleteRule: "", listRule: "" });
  client = createClient(aura.url, { store: memoryStore() });
});
after(() => aura.stop());

test("invoke answers text or JSON; a failing call is an AuraError", async () => {
  assert.match(await client.functions.invoke("hello"), /Hello/);
  const echoed = await client.functions.invoke("echo", { path: "/x?y=1", body: { a: 1 } });
  assert.equal(typeof echoed, "object");
  await assert.rejects(client.functions.invoke("missing"), (err) => err instanceof AuraError && err.status === 404);
});

test("a streamed answer yields its chunks before the function ends", async () => {
  const started = Date.now();
  const chunks = [];
  for await (const chunk of client.functions.stream("stream", { path: "?n=3&delay_ms=400", text: true })) {
    chunks.push([chunk, Date.now() - started]);
  }
  assert.deepEqual(chunks.map(([c]) => c).join(""), "chunk 0\nchunk 1\nchunk 2\n");
  assert.ok(chunks.length >= 2, "several chunks");
  const [, firstAt] = chunks[0];
  const [, lastAt] = chunks[chunks.length - 1];
  assert.ok(lastAt - firstAt >= 600, `the first chunk came ${lastAt - firstAt} ms before the last`);
});

test("a background run is polled to its result", async () => {
  const run = await client.functions.invokeAsync("hello", { method: "POST", body: "x" });
  const done = await run.result(50);
  assert.equal(done.status, "succeeded");
  assert.equal(done.response.status, 200);
  assert.match(done.response.body, /Hello/);
});

test("an upload reports progress and downloads back the same bytes", async () => {
  const bytes = new Uint8Array(300 * 1024).map((_, i) => (i * 7) % 251);
  const progress = [];
  const stored = await client.storage.bucket("files").upload("dir/data.bin", bytes, {
    onProgress: (sent, total) => progress.push([sent, total]),
  });
  assert.equal(stored.size, bytes.byteLength);
  assert.ok(progress.length >= 2, "progress while sending");
  assert.deepEqual(progress.at(-1), [bytes.byteLength, bytes.byteLength]);
  const back = new Uint8Array(await (await client.storage.bucket("files").download("dir/data.bin")).arrayBuffer());
  assert.deepEqual(back, bytes);

  const listed = await client.storage.bucket("files").list({ prefix: "dir/" });
  assert.deepEqual(listed.objects.map((o) => o.key), ["dir/data.bin"]);
  await client.storage.bucket("files").remove("dir/data.bin");
  await assert.rejects(client.storage.bucket("files").download("dir/data.bin"), (err) => err.code === "object_not_found");
});
