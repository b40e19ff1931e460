// The hooks in jsdom against the real server: the user, a live list that
// another client changes, presence between two clients.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createElement as h } from "react";
import { render, screen, waitFor, act, cleanup } from "@testing-library/react";
import { createClient, memoryStore } from "@aura/client";
import { AuraProvider, useUser, useRecords, usePresence } from "../dist/index.js";
import { startAura } from "../../client/test/aura.mjs";

const PASSWORD = "correct horse battery";
let aura;
before(async () => {
  aura = await startAura();
  await aura.admin("POST", "/api/collections", {
    name: "todos",
    fields: [{ name: "title", type: "text" }, { name: "done", type: "bool" }],
    listRule: "", viewRule: "", createRule: "", updateRule: "",
  });
  await aura.admin("PUT", "/api/admin/realtime/rules/" + encodeURIComponent("room.>"), { subscribeRule: "@request.auth.id != ''", publishRule: "" });
});
after(() => {
  cleanup();
  aura.stop();
});

const withClient = (client, element) => h(AuraProvider, { client }, element);

test("useUser follows sign-in and sign-out", async () => {
  const client = createClient(aura.url, { store: memoryStore() });
  function Who() {
    const { user, loading } = useUser();
    return h("p", { "data-testid": "who" }, loading ? "…" : user ? user.email : "signed out");
  }
  render(withClient(client, h(Who)));
  await waitFor(() => assert.equal(screen.getByTestId("who").textContent, "signed out"));
  await act(() => client.auth.signUp({ email: "hook@example.com", password: PASSWORD }));
  await waitFor(() => assert.equal(screen.getByTestId("who").textContent, "hook@example.com"));
  await act(() => client.auth.signOut());
  await waitFor(() => assert.equal(screen.getByTestId("who").textContent, "signed out"));
  cleanup();
});

test("useRecords shows what another client writes, live, in sort order", async () => {
  const client = createClient(aura.url, { store: memoryStore() });
  const other = createClient(aura.url, { store: memoryStore() });
  await other.records("todos").create({ title: "b: first", done: false });
  function Todos() {
    const { items, loading } = useRecords("todos", { filter: "done = false", sort: "title" });
    if (loading) return h("p", null, "loading");
    return h("ul", null, items.map((t) => h("li", { key: t.id }, t.title)));
  }
  render(withClient(client, h(Todos)));
  const titles = () => screen.queryAllByRole("listitem").map((li) => li.textContent);
  await waitFor(() => assert.deepEqual(titles(), ["b: first"]));
  const a = await other.records("todos").create({ title: "a: second", done: false });
  await waitFor(() => assert.deepEqual(titles(), ["a: second", "b: first"]), { timeout: 5000 });
  await other.records("todos").update(a.id, { done: true });
  await waitFor(() => assert.deepEqual(titles(), ["b: first"]), { timeout: 5000 });
  cleanup();
});

test("usePresence shows both clients and their states", async () => {
  const ada = createClient(aura.url, { store: memoryStore() });
  const bob = createClient(aura.url, { store: memoryStore() });
  await ada.auth.signUp({ email: "room-ada@example.com", password: PASSWORD });
  await bob.auth.signUp({ email: "room-bob@example.com", password: PASSWORD });
  let update;
  function Room({ testid, status }) {
    const presence = usePresence("room.one", { status });
    if (testid === "ada") update = presence.update;
    return h("p", { "data-testid": testid }, presence.members.map((m) => m.state.status).sort().join(","));
  }
  render(h("div", null, withClient(ada, h(Room, { testid: "ada", status: "here" })), withClient(bob, h(Room, { testid: "bob", status: "typing" }))));
  await waitFor(() => assert.equal(screen.getByTestId("bob").textContent, "here,typing"), { timeout: 5000 });
  await act(() => update({ status: "away" }));
  await waitFor(() => assert.equal(screen.getByTestId("bob").textContent, "away,typing"), { timeout: 5000 });
  cleanup();
});
