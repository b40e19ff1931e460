import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startAura, uiTest, signIn, wasm } from "./harness.mjs";

let aura;
before(async () => (aura = await startAura()));
after(() => aura.stop());

test("the landing page links to the dashboard, which is locked down", async () => {
  const root = await fetch(aura.url + "/");
  assert.equal(root.status, 200);
  assert.match(await root.text(), /href="\/_\/"/);
  const index = await fetch(aura.url + "/_/");
  assert.equal(index.status, 200);
  assert.match(index.headers.get("content-security-policy"), /default-src 'self'/);
  assert.equal(index.headers.get("x-frame-options"), "DENY");
  assert.equal(index.headers.get("cache-control"), "no-cache");
  const asset = (await index.text()).match(/src="(\/_\/assets\/[^"]+\.js)"/)[1];
  const js = await fetch(aura.url + asset);
  assert.equal(js.status, 200);
  assert.match(js.headers.get("cache-control"), /immutable/);
  const missing = await fetch(aura.url + "/_/assets/nothing.js");
  assert.equal(missing.status, 404);
  assert.equal((await missing.json()).error.code, "not_found");
  const bare = await fetch(aura.url + "/_", { redirect: "manual" });
  assert.equal(bare.status, 308);
  assert.equal(bare.headers.get("location"), "/_/");
  const deep = await fetch(aura.url + "/_/functions");
  assert.equal(deep.headers.get("cache-control"), "no-cache");
  assert.match(await deep.text(), /<div id="app">/);
});

uiTest("the landing page links to the dashboard, which is locked down (in the browser)", [], async (page) => {
  await page.goto(aura.url + "/");
  await page.getByRole("link", { name: "Dashboard" }).click();
  await page.getByLabel("Admin token").waitFor();
});

uiTest("a wrong admin token is refused with the server's error", ["401"], async (page) => {
  await page.goto(aura.url + "/_/");
  await page.getByLabel("Admin token").fill("not-the-token");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").getByText("unauthorized").waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
});

uiTest("the overview counts what the API lists", [], async (page) => {
  await aura.api("POST", "/api/admin/storage/buckets", { name: "avatars" });
  await signIn(page, aura);
  await page.locator('[data-area="buckets"] .count').getByText("1").waitFor();
  await page.locator('[data-area="functions"] .count').getByText("0").waitFor();
});

uiTest("deploying by upload makes the function answer, and a bad upload changes nothing", ["400"], async (page) => {
  await signIn(page, aura);
  await page.getByRole("navigation", { name: "Pages" }).getByRole("link", { name: "Functions" }).click();

  await page.locator('input[type="file"]').setInputFiles({ name: "junk.wasm", mimeType: "application/wasm", buffer: Buffer.from("not a component") });
  await page.getByRole("button", { name: "Deploy" }).click();
  await page.getByRole("alert").getByText("invalid_component").waitFor();
  assert.deepEqual((await aura.api("GET", "/api/admin/functions")).body.functions, []);

  await page.locator('input[type="file"]').setInputFiles(wasm("hello"));
  await page.getByLabel("Name").fill("hello");
  await page.getByRole("button", { name: "Deploy" }).click();
  await page.getByText("hello version 1 is active").waitFor({ timeout: 60_000 });
  const invoked = await fetch(aura.url + "/fn/hello");
  assert.equal(invoked.status, 200);
  assert.match(await invoked.text(), /Hello/);

  await page.locator('[data-function="hello"]').getByRole("button", { name: "Versions" }).click();
  await page.locator('[data-version="1"]').getByText("(active)").waitFor();
});

uiTest("the environment switcher shows each environment's own functions", [], async (page) => {
  assert.equal((await aura.api("POST", "/api/admin/environments", { name: "staging" })).status, 201);
  await signIn(page, aura);
  await page.getByRole("navigation", { name: "Pages" }).getByRole("link", { name: "Functions" }).click();
  await page.getByLabel("Environment").selectOption("staging");
  await page.getByText("No functions yet").waitFor();
  await page.getByLabel("Environment").selectOption("default");
  await page.locator('[data-function="hello"]').waitFor();
});
