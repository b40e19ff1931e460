// createServerClient: a session in the app's cookies across requests, the
// CSRF token repeated, and a refresh with the refresh cookie once the
// access cookie is gone.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServerClient } from "../dist/server.js";
import { createServer, request } from "node:http";
import { startAura, countingFetch } from "./aura.mjs";

let aura;
before(async () => {
  aura = await startAura();
  await aura.admin("POST", "/api/collections", {
    name: "posts", fields: [{ name: "text", type: "text" }], createRule: "@request.auth.id != ''", listRule: "",
  });
});
after(() => aura.stop());

/** The app's cookie store, as a framework would hand it over. */
function appCookies() {
  const jar = new Map();
  return {
    jar,
    adapter: {
      getAll: () => [...jar].map(([name, value]) => ({ name, value })),
      set: (name, value, options) => (options.maxAge === 0 ? jar.delete(name) : jar.set(name, value)),
    },
  };
}

test("a session lives in the app's cookies across requests and refreshes from them", async () => {
  const { jar, adapter } = appCookies();
  // Request 1: the sign-up form posts to the app, which signs up on Aura.
  const first = createServerClient(aura.url, { cookies: adapter });
  const user = await first.auth.signUp({ email: "ssr@example.com", password: "correct horse battery" });
  assert.equal(user.email, "ssr@example.com");
  assert.deepEqual([...jar.keys()].sort(), ["aura_access", "aura_csrf", "aura_refresh"]);

  // Request 2: a page render knows the user, and a write passes the CSRF check.
  const second = createServerClient(aura.url, { cookies: adapter });
  assert.equal((await second.getUser()).email, "ssr@example.com");
  const post = await second.records("posts").create({ text: "rendered on the server" });
  assert.equal(post.text, "rendered on the server");

  // Request 3: the access cookie expired; the refresh cookie buys new ones, once.
  jar.delete("aura_access");
  const counting = countingFetch();
  const third = createServerClient(aura.url, { cookies: adapter, fetch: counting.fetch });
  const [a, b] = await Promise.all([third.getUser(), third.records("posts").list()]);
  assert.equal(a.email, "ssr@example.com");
  assert.equal(b.totalItems, 1);
  assert.equal(counting.count("/api/auth/refresh"), 1);
  assert.ok(jar.has("aura_access"));

  // Signing out clears them.
  await createServerClient(aura.url, { cookies: adapter }).auth.signOut();
  assert.equal(jar.has("aura_access"), false);
  assert.equal(await createServerClient(aura.url, { cookies: adapter }).getUser(), null);
});

test("without session cookies a server client is signed out", async () => {
  const { adapter } = appCookies();
  assert.equal(await createServerClient(aura.url, { cookies: adapter }).getUser(), null);
});

test("the cookie jar takes only its environment's cookies, by their exact names", async () => {
  const { cookieJar } = await import("../dist/server.js");
  const cookies = [
    { name: "aura_access", value: "default-access" },
    { name: "aura_csrf", value: "default-csrf" },
    { name: "aura_refresh.staging", value: "staging-refresh" },
    { name: "aura_csrf.staging", value: "staging-csrf" },
    { name: "aura_access.stagingx", value: "other" },
  ];
  const staging = cookieJar({ getAll: () => cookies, set: () => {} }, "staging");
  assert.equal(staging.csrf(), "staging-csrf");
  assert.equal(staging.needsRefresh(), true, "its own access cookie is missing");
  assert.equal(staging.header("/api/auth/refresh"), "aura_refresh.staging=staging-refresh; aura_csrf.staging=staging-csrf");
  assert.equal(staging.header("/api/collections"), "aura_csrf.staging=staging-csrf");
  const plain = cookieJar({ getAll: () => cookies, set: () => {} });
  assert.equal(plain.csrf(), "default-csrf");
  assert.equal(plain.needsRefresh(), false);
  // Without a way to save new cookies, no refresh burns the refresh token.
  assert.equal(cookieJar({ getAll: () => cookies }, "staging").needsRefresh(), false);
});

test("Set-Cookie lifetimes: Max-Age wins, Expires counts without it, and paths are read relative to the API", async () => {
  const { cookieJar } = await import("../dist/server.js");
  const saved = new Map();
  const jar = cookieJar({ getAll: () => [], set: (name, value, options) => saved.set(name, { value, maxAge: options.maxAge }) });
  const answer = (...cookies) => new Response(null, { headers: cookies.map((c) => ["set-cookie", c]) });
  const later = new Date(Date.now() + 3600_000).toUTCString();
  const earlier = new Date(Date.now() - 3600_000).toUTCString();
  jar.receive(answer(`aura_access=a; Path=/; Expires=${later}; HttpOnly`, `aura_refresh=r; Path=/aura/api/auth; Max-Age=600; HttpOnly`, "aura_csrf=c; Path=/"));
  assert.equal(jar.header("/api/auth/refresh"), "aura_access=a; aura_refresh=r; aura_csrf=c");
  assert.equal(jar.header("/api/collections"), "aura_access=a; aura_csrf=c", "the refresh cookie stays on the auth routes");
  assert.ok(saved.get("aura_access").maxAge > 3500, "an Expires cookie is kept until then");
  assert.equal(saved.get("aura_csrf").maxAge, undefined, "a session cookie stays one");
  jar.receive(answer(`aura_access=a; Path=/; Expires=${earlier}`, `aura_refresh=r; Path=/api/auth; Max-Age=0; Expires=${later}`));
  assert.equal(jar.header("/api/auth/refresh"), "aura_csrf=c");
  assert.equal(saved.get("aura_access").maxAge, 0);
  assert.equal(saved.get("aura_refresh").maxAge, 0);
});

test("a server client of Aura served under a path prefix refreshes with its cookies", async () => {
  // An app's reverse proxy: /aura/... goes to Aura without the prefix.
  const target = new URL(aura.url);
  const proxy = createServer((incoming, outgoing) => {
    const forwarded = request(
      { host: target.hostname, port: target.port, method: incoming.method, path: incoming.url.replace(/^\/aura/, ""), headers: incoming.headers },
      (answer) => {
        outgoing.writeHead(answer.statusCode, answer.headers);
        answer.pipe(outgoing);
      },
    );
    incoming.pipe(forwarded);
  });
  await new Promise((ok) => proxy.listen(0, "127.0.0.1", ok));
  const base = `http://127.0.0.1:${proxy.address().port}/aura`;
  const { jar, adapter } = appCookies();
  await createServerClient(base, { cookies: adapter }).auth.signUp({ email: "prefix@example.com", password: "correct horse battery" });
  jar.delete("aura_access");
  const counting = countingFetch();
  const later = createServerClient(base, { cookies: adapter, fetch: counting.fetch });
  assert.equal((await later.getUser()).email, "prefix@example.com");
  assert.equal(counting.count("/aura/api/auth/refresh"), 1);
  await later.auth.signOut();
  assert.equal(jar.has("aura_refresh"), false);
  await new Promise((ok) => proxy.close(ok));
});
