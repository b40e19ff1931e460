// Realtime through the SDK: record changes as they happen, and no event
// lost when the connection drops (through a proxy the test cuts).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createClient, memoryStore } from "../dist/index.js";
import { startAura, countingFetch, cuttableProxy, until } from "./aura.mjs";

let aura;
before(async () => {
  aura = await startAura();
  await aura.admin("POST", "/api/collections", { name: "msgs", fields: [{ name: "text", type: "text" }], listRule: "", viewRule: "" });
});
after(() => aura.stop());

/** Waits until `check()` holds. */
test("record changes arrive in order, with the filter applied", async () => {
  const client = createClient(aura.url);
  const seen = [];
  const sub = client.records("msgs").subscribe({ filter: 'text != "skip"' }, (e) => seen.push(`${e.action} ${e.record.text}`));
  await sub.ready;
  const a = (await aura.admin("POST", "/api/collections/msgs/records", { text: "one" })).body;
  await aura.admin("POST", "/api/collections/msgs/records", { text: "skip" });
  await aura.admin("PATCH", `/api/collections/msgs/records/${a.id}`, { text: "uno" });
  await aura.admin("DELETE", `/api/collections/msgs/records/${a.id}`);
  await until(() => seen.length === 3, "three events");
  assert.deepEqual(seen, ["create one", "update uno", "delete uno"]);
  sub.close();
});

test("events published while the connection is down arrive after it resumes, in order", async () => {
  // A proxy in front of the server whose connections the test can cut.
  const proxy = await cuttableProxy(aura.url);
  const client = createClient(proxy.url, { store: memoryStore() });
  await client.auth.signUp({ email: "listener@example.com", password: "correct horse battery" });
  await aura.admin("PUT", "/api/admin/realtime/rules/" + encodeURIComponent("room.>"), { subscribeRule: "", publishRule: "" });

  const got = [];
  let opens = 0;
  const sub = client.realtime.subscribe(["room.>"], {
    onMessage: (e) => got.push(e.data.data.n),
    onOpen: () => opens++,
  });
  await sub.ready;
  await aura.admin("POST", "/api/realtime/channels/room.a", { n: 1 });
  await until(() => got.length === 1, "the first event");

  // Cut, and keep the way closed while five events go out.
  proxy.accepting = false;
  proxy.cut();
  for (let n = 2; n <= 6; n++) await aura.admin("POST", "/api/realtime/channels/room.a", { n });
  proxy.accepting = true;
  await until(() => opens === 2, "the reconnection");
  const resumedFrom = proxy.sent.filter((head) => /^last-event-id: *\S+/im.test(head));
  assert.equal(resumedFrom.length, 1, "the reconnection said where it stopped");
  await aura.admin("POST", "/api/realtime/channels/room.a", { n: 7 });
  await until(() => got.length === 7, "every event");
  assert.deepEqual(got, [1, 2, 3, 4, 5, 6, 7]);
  sub.close();
  await proxy.close();
});

test("a live query stays current, in sort order, through the filter", async () => {
  const client = createClient(aura.url, { store: memoryStore() });
  await aura.admin("POST", "/api/collections/msgs/records", { text: "live c" });
  const live = client.records("msgs").live({ filter: 'text ~ "live"', sort: "text" });
  const texts = () => live.current.items.map((r) => r.text);
  await until(() => !live.current.loading, "the first page");
  assert.deepEqual(texts(), ["live c"]);
  const b = (await aura.admin("POST", "/api/collections/msgs/records", { text: "live b" })).body;
  await aura.admin("POST", "/api/collections/msgs/records", { text: "dead" });
  await aura.admin("POST", "/api/collections/msgs/records", { text: "live a" });
  await until(() => texts().length === 3, "three live records");
  assert.deepEqual(texts(), ["live a", "live b", "live c"]);
  await aura.admin("PATCH", `/api/collections/msgs/records/${b.id}`, { text: "dead b" });
  await until(() => texts().length === 2, "the record leaving the filter");
  assert.deepEqual(texts(), ["live a", "live c"]);
  live.close();
});

test("presence lists who joined, follows their state, and drops who left", async () => {
  await aura.admin("PUT", "/api/admin/realtime/rules/" + encodeURIComponent("lobby.>"), { subscribeRule: "", publishRule: "" });
  const ada = createClient(aura.url, { store: memoryStore() });
  const bob = createClient(aura.url, { store: memoryStore() });
  await ada.auth.signUp({ email: "p-ada@example.com", password: "correct horse battery" });
  await bob.auth.signUp({ email: "p-bob@example.com", password: "correct horse battery" });
  let seen = [];
  const mine = ada.realtime.join("lobby.main", { status: "here" }, (members) => (seen = members));
  await mine.ready;
  const theirs = bob.realtime.join("lobby.main", { status: "typing" }, () => {});
  await theirs.ready;
  await until(() => seen.length === 2, "both members");
  await theirs.update({ status: "away" });
  await until(() => seen.some((m) => m.state.status === "away"), "the new state");
  theirs.close();
  await until(() => seen.length === 1, "bob leaving");
  assert.equal(seen[0].state.status, "here");
  mine.close();
});

test("a hundred live queries share one connection and all follow a change", async () => {
  const counting = countingFetch();
  const client = createClient(aura.url, { store: memoryStore(), fetch: counting.fetch });
  const queries = Array.from({ length: 100 }, (_, i) => client.records("msgs").live({ sort: i % 2 ? "text" : "-created", perPage: 200 }));
  await until(() => queries.every((q) => !q.current.loading), "every first page");
  assert.equal(counting.count("/api/realtime"), 1, "one stream for all of them");
  const made = (await aura.admin("POST", "/api/collections/msgs/records", { text: "for everyone" })).body;
  await until(() => queries.every((q) => q.current.items.some((r) => r.id === made.id)), "the change in every list");
  // Closing some keeps the others live, without losing what happens meanwhile.
  for (const q of queries.slice(50)) q.close();
  const next = (await aura.admin("POST", "/api/collections/msgs/records", { text: "for half" })).body;
  await until(() => queries.slice(0, 50).every((q) => q.current.items.some((r) => r.id === next.id)), "the next change");
  for (const q of queries.slice(0, 50)) q.close();
});

test("channel patterns match as the server's do", async () => {
  const { matches } = await import("../dist/realtime.js");
  assert.ok(matches("chat.*", "chat.room1"));
  assert.ok(!matches("chat.*", "chat.room1.typing"));
  assert.ok(matches("chat.>", "chat.room1.typing"));
  assert.ok(!matches("chat.>", "chat"));
  assert.ok(matches("collections.msgs.*", "collections.msgs.abc"));
  assert.ok(!matches("a.b", "a.c"));
});

test("a refused pattern fails its own subscription, not the ones sharing its connection", async () => {
  await aura.admin("PUT", "/api/admin/realtime/rules/" + encodeURIComponent("open.>"), { subscribeRule: "", publishRule: "" });
  const client = createClient(aura.url, { store: memoryStore() });
  await client.auth.signUp({ email: "shared@example.com", password: "correct horse battery" });
  const got = [];
  const allowed = client.realtime.subscribe(["open.>"], { onMessage: (e) => got.push(e.data.data.n) });
  const refused = client.realtime.subscribe(["secret.*"], { onMessage: () => {} });
  await assert.rejects(refused.ready, (err) => err.status === 403);
  await allowed.ready;
  await aura.admin("POST", "/api/realtime/channels/open.a", { n: 1 });
  await until(() => got.length === 1, "the allowed subscription's event");
  allowed.close();
  refused.close();
});

test("a subscription that joins an open connection on the same channels is ready at once", async () => {
  const client = createClient(aura.url, { store: memoryStore() });
  const first = client.records("msgs").live({ sort: "text" });
  await first.ready;
  // Mounted later, on the same collection: nothing to reconnect for.
  const second = client.records("msgs").live({ sort: "-text" });
  await second.ready;
  const made = (await aura.admin("POST", "/api/collections/msgs/records", { text: "both see it" })).body;
  await until(() => [first, second].every((q) => q.current.items.some((r) => r.id === made.id)), "the change in both");
  first.close();
  second.close();
});

test("streams reconnect as the new user when the user signs out", async () => {
  await aura.admin("PUT", "/api/admin/realtime/rules/" + encodeURIComponent("members.>"), { subscribeRule: "@request.auth.id != ''", publishRule: "" });
  const client = createClient(aura.url, { store: memoryStore() });
  await client.auth.signUp({ email: "leaver@example.com", password: "correct horse battery" });
  const got = [];
  const errors = [];
  const sub = client.realtime.subscribe(["members.>"], { onMessage: (e) => got.push(e.data.data.n), onError: (err) => errors.push(err) });
  await sub.ready;
  await aura.admin("POST", "/api/realtime/channels/members.a", { n: 1 });
  await until(() => got.length === 1, "the member's event");
  await client.auth.signOut();
  await until(() => errors.some((err) => err.status === 403), "the refusal of the signed-out stream");
  await aura.admin("POST", "/api/realtime/channels/members.a", { n: 2 });
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(got, [1], "nothing reaches a signed-out client");
  sub.close();
});
