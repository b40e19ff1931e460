// The client in Chromium, served from Aura's own origin: two tabs needing
// a fresh token make one refresh between them (Web Locks and the shared
// localStorage), cookie sessions keep the tokens out of JavaScript, and
// streams read through EventSource resume where they dropped.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { build } from "esbuild";
import { resolve } from "node:path";
import { chromium } from "playwright-core";
import { startAura, cuttableProxy } from "./aura.mjs";

let aura, browser, bundle;
before(async () => {
  aura = await startAura();
  await aura.admin("POST", "/api/collections", {
    name: "notes", fields: [{ name: "text", type: "text" }], createRule: "@request.auth.id != ''", listRule: "@request.auth.id != ''",
  });
  const built = await build({
    entryPoints: [resolve(import.meta.dirname, "../dist/index.js")],
    bundle: true, format: "esm", platform: "browser", target: "es2022", write: false,
  });
  bundle = built.outputFiles[0].text;
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
  });
});
after(async () => {
  await browser?.close();
  aura.stop();
});

/** A page at Aura's origin (or `origin`, a proxy of it) with the SDK as `window.sdk`. */
async function tab(context, origin = aura.url) {
  const page = await context.newPage();
  await page.route(`${origin}/sdk-test/**`, (route) =>
    route.request().url().endsWith(".js")
      ? route.fulfill({ contentType: "text/javascript", body: bundle })
      : route.fulfill({ contentType: "text/html", body: '<!doctype html><script type="module">import * as sdk from "./aura.js"; window.sdk = sdk;</script>' }),
  );
  await page.goto(`${origin}/sdk-test/`);
  await page.waitForFunction(() => window.sdk);
  return page;
}

test("two tabs that need a fresh token at once make one refresh", async () => {
  const context = await browser.newContext();
  const refreshes = [];
  context.on("request", (request) => request.url().includes("/api/auth/refresh") && refreshes.push(request.url()));
  const [one, two] = [await tab(context), await tab(context)];
  assert.equal(await one.evaluate(() => typeof navigator.locks?.request), "function", "Web Locks are there");
  await one.evaluate(async () => {
    window.client = sdk.createClient(location.origin);
    await client.auth.signUp({ email: "tabs@example.com", password: "correct horse battery" });
    // Expire the kept session: both tabs read it from localStorage.
    const key = Object.keys(localStorage).find((k) => k.startsWith("aura.session"));
    localStorage.setItem(key, JSON.stringify({ ...JSON.parse(localStorage.getItem(key)), expiresAt: 0 }));
  });
  await two.evaluate(() => (window.client = sdk.createClient(location.origin)));
  const [a, b] = await Promise.all([one.evaluate(() => client.auth.me().then((u) => u.email)), two.evaluate(() => client.auth.me().then((u) => u.email))]);
  assert.deepEqual([a, b], ["tabs@example.com", "tabs@example.com"]);
  assert.equal(refreshes.length, 1, refreshes.join("\n"));
  await context.close();
});

test("cookie sessions keep the tokens in HttpOnly cookies and pass the CSRF check", async () => {
  const context = await browser.newContext();
  const page = await tab(context);
  const seen = await page.evaluate(async () => {
    const client = sdk.createClient(location.origin, { session: "cookie" });
    await client.auth.signUp({ email: "cookies@example.com", password: "correct horse battery" });
    const note = await client.records("notes").create({ text: "written with cookies" });
    const kept = Object.values(localStorage).join("");
    return { note: note.text, cookies: document.cookie, kept };
  });
  assert.equal(seen.note, "written with cookies");
  assert.match(seen.cookies, /aura_csrf=/);
  assert.doesNotMatch(seen.cookies, /aura_access|aura_refresh/, "the tokens are out of JavaScript's reach");
  assert.doesNotMatch(seen.kept, /eyJ/, "no token in localStorage");
  const names = (await context.cookies()).map((c) => c.name).sort();
  assert.deepEqual(names, ["aura_access", "aura_csrf", "aura_refresh"]);

  // A new page of the same browser is signed in by its cookies alone.
  const again = await tab(context);
  const email = await again.evaluate(() => sdk.createClient(location.origin, { session: "cookie" }).auth.me().then((u) => u.email));
  assert.equal(email, "cookies@example.com");
  // Without the CSRF header a write is refused.
  const status = await again.evaluate(() => fetch("/api/collections/notes/records", {
    method: "POST", credentials: "include", headers: { "content-type": "application/json" }, body: '{"text":"forged"}',
  }).then((r) => r.status));
  assert.equal(status, 403);

  // Storage cleared while the cookies live: the client finds the session again.
  const restored = await again.evaluate(async () => {
    localStorage.clear();
    return sdk.createClient(location.origin, { session: "cookie" }).auth.user().then((u) => u?.email ?? null);
  });
  assert.equal(restored, "cookies@example.com");
  // The access cookie lapsed: signing out still ends the session, and no cookie outlives it.
  await context.clearCookies({ name: "aura_access" });
  const after = await again.evaluate(async () => {
    await sdk.createClient(location.origin, { session: "cookie" }).auth.signOut();
    return sdk.createClient(location.origin, { session: "cookie" }).auth.user();
  });
  assert.equal(after, null);
  assert.deepEqual((await context.cookies()).map((c) => c.name).filter((n) => n !== "aura_csrf"), []);
  await context.close();
});

test("through EventSource, a stream resumes where it dropped and a refusal is the server's error", async () => {
  const proxy = await cuttableProxy(aura.url);
  await aura.admin("PUT", "/api/admin/realtime/rules/" + encodeURIComponent("lobby.>"), { subscribeRule: "@request.auth.id != ''", publishRule: "" });
  const context = await browser.newContext();
  const page = await tab(context, proxy.url);
  await page.evaluate(async () => {
    window.client = sdk.createClient(location.origin, { realtime: "eventsource", store: sdk.memoryStore() });
    await client.auth.signUp({ email: "source@example.com", password: "correct horse battery" });
    window.got = [];
    window.opens = 0;
    window.sub = client.realtime.subscribe(["lobby.>"], { onMessage: (e) => got.push(e.data.data.n), onOpen: () => opens++ });
    await sub.ready;
  });
  const streams = () => proxy.sent.filter((head) => head.startsWith("GET /api/realtime?"));
  assert.equal(streams().length, 1);
  assert.match(streams()[0], /[?&]token=/, "EventSource sends the token in the URL");
  const publish = (n) => aura.admin("POST", "/api/realtime/channels/lobby.a", { n });
  const got = () => page.evaluate(() => window.got);
  await publish(1);
  await page.waitForFunction(() => window.got.length === 1);

  proxy.accepting = false;
  proxy.cut();
  for (let n = 2; n <= 4; n++) await publish(n);
  proxy.accepting = true;
  await page.waitForFunction(() => window.opens === 2, null, { timeout: 15000 });
  assert.match(streams().at(-1), /[?&]lastEventId=\d+/, "the reconnection says where it stopped");
  await publish(5);
  await page.waitForFunction(() => window.got.length === 5);
  assert.deepEqual(await got(), [1, 2, 3, 4, 5]);

  // Signed out, the subscribe rule refuses: the subscription fails with the server's 403.
  const refused = await page.evaluate(async () => {
    await client.auth.signOut();
    sub.close();
    const denied = client.realtime.subscribe(["lobby.>"], { onMessage: () => undefined });
    return denied.ready.then(() => "opened", (err) => `${err.status} ${err.code}`);
  });
  assert.equal(refused, "403 forbidden");
  await context.close();
  await proxy.close();
});
