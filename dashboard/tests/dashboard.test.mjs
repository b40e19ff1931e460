import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
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

uiTest("the link aura serve prints signs in once, and leaves no code behind", ["400"], async (page) => {
  assert.match(aura.link, /^http:\/\/127\.0\.0\.1:\d+\/_\/#code=[0-9a-f]{64}$/);
  await page.goto(aura.link);
  await page.getByRole("navigation", { name: "Pages" }).waitFor();
  assert.equal(new URL(page.url()).hash, "#/overview");
  assert.equal(await page.evaluate(() => sessionStorage.getItem("aura.admin-token")), aura.token);
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.goto(aura.url + "/_/#/functions");
  await page.goto(aura.link);
  await page.getByRole("alert").getByText("invalid_code").waitFor();
  await page.getByLabel("Admin token").waitFor();
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

  await page.locator('[data-function="hello"]').getByRole("link", { name: "hello" }).click();
  await page.locator('[data-version="1"]').getByText("(active)").waitFor();
});

uiTest("the invoke console's call shows up in the live logs", [], async (page) => {
  await signIn(page, aura);
  await page.goto(aura.url + "/_/#/functions/hello");
  await page.getByRole("region", { name: "Logs" }).getByText("hello: GET /").waitFor();
  const console_ = page.getByRole("region", { name: "Invoke" });
  await console_.getByLabel("Path").fill("/from-the-console");
  await console_.getByRole("button", { name: "Send" }).click();
  await console_.getByRole("status", { name: "Response status" }).getByText("200").waitFor();
  await console_.getByLabel("Response body").getByText(/Hello/).waitFor();
  const logs = page.getByRole("region", { name: "Logs" });
  await logs.getByText("hello: GET /from-the-console").waitFor();
  await logs.getByText("hello: done").first().waitFor();
  // Invocations from elsewhere arrive while the page follows.
  await fetch(aura.url + "/fn/hello/from-curl");
  await logs.getByText("hello: GET /from-curl").waitFor();
  // The overview counts them: one from the deploy test, these two.
  await page.goto(aura.url + "/_/#/overview");
  await page.locator('[data-area="invocations"] .count').getByText("3").waitFor();
  await page.locator('[data-area="errors"] .count').getByText("0").waitFor();
  await page.locator('tr[data-function="hello"]').waitFor();
});

uiTest("a streamed response shows its chunks as they arrive", [], async (page) => {
  const form = new FormData();
  form.append("component", new Blob([readFileSync(wasm("stream"))]), "stream.wasm");
  const deployed = await fetch(aura.url + "/api/admin/functions/stream/versions", {
    method: "POST", headers: { authorization: `Bearer ${aura.token}` }, body: form,
  });
  assert.equal(deployed.status, 201);
  await signIn(page, aura);
  await page.goto(aura.url + "/_/#/functions/stream");
  const console_ = page.getByRole("region", { name: "Invoke" });
  await console_.getByLabel("Path").fill("/?n=3&delay_ms=1500");
  await console_.getByRole("button", { name: "Send" }).click();
  const body = console_.getByLabel("Response body");
  await body.getByText("chunk 0").waitFor();
  assert.equal(await body.getByText("chunk 2").count(), 0, "the last chunk is not there yet");
  await console_.getByText("streaming…").waitFor();
  await body.getByText("chunk 2").waitFor();
  await console_.getByText(/done, \d+ chunks/).waitFor();
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

uiTest("a schedule is added, run now, paused, and its runs are listed", ["400"], async (page) => {
  await signIn(page, aura);
  await page.goto(aura.url + "/_/#/schedules");
  await page.getByText("No schedules yet.").waitFor();
  const form = page.getByRole("form", { name: "Schedule" });
  await form.getByLabel("Schedule name").fill("nightly");
  await form.getByLabel("Function").selectOption("hello");
  await form.getByLabel("Cron").fill("not a cron");
  await form.getByRole("button", { name: "Save schedule" }).click();
  await page.getByRole("alert").getByText("invalid_schedule").waitFor();
  assert.deepEqual((await aura.api("GET", "/api/admin/schedules")).body.schedules, []);

  await form.getByLabel("Cron").fill("0 3 * * *");
  await form.getByLabel("Path").fill("/nightly");
  await form.getByRole("button", { name: "Save schedule" }).click();
  const row = page.locator('[data-schedule="nightly"]');
  await row.getByText("active").waitFor();
  assert.equal((await aura.api("GET", "/api/admin/schedules/nightly")).body.cron, "0 3 * * *");

  await row.getByRole("button", { name: "Run now" }).click();
  await row.getByRole("button", { name: "nightly" }).click();
  const runs = page.getByRole("region", { name: "Runs" });
  for (let i = 0; i < 50 && !(await runs.getByRole("cell", { name: "ok", exact: true }).count()); i++) {
    await runs.getByRole("button", { name: "Refresh" }).click();
    await page.waitForTimeout(200);
  }
  await runs.getByRole("cell", { name: "ok", exact: true }).waitFor();
  await runs.getByRole("cell", { name: "200", exact: true }).waitFor();

  await row.getByRole("button", { name: "Pause" }).click();
  await row.getByText("paused").waitFor();
  assert.equal((await aura.api("GET", "/api/admin/schedules/nightly")).body.paused, true);
});

uiTest("the API page renders this server's OpenAPI document, searchable", [], async (page) => {
  await signIn(page, aura);
  await page.getByRole("link", { name: "API", exact: true }).click();
  await page.getByLabel("Search the API").fill("collections/{name}/migrations");
  const op = page.locator('[data-operation="GET /api/collections/{name}/migrations"]');
  await op.getByText("A collection's migration history").click();
  await op.getByText("admin token").waitFor();
  await op.getByText("{ migrations?: Migration[] }").waitFor();
  assert.equal(await page.locator("[data-operation]").count(), 1);
  await page.getByRole("region", { name: "Schemas" }).getByRole("heading", { name: "Migration", exact: true }).waitFor();
});

uiTest("keyboard alone signs in and moves between pages; a phone-sized window does not overflow", [], async (page) => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(aura.url + "/_/");
  await page.getByLabel("Admin token").focus();
  await page.keyboard.type(aura.token);
  await page.keyboard.press("Enter");
  const nav = page.getByRole("navigation", { name: "Pages" });
  await nav.waitFor();
  await nav.getByRole("link", { name: "Collections" }).focus();
  await page.keyboard.press("Enter");
  await page.locator('[data-collection="users"]').waitFor();
  // Each page once its data is in: the window never scrolls sideways (wide
  // tables scroll inside the page's own box) and the controls are on screen.
  const pages = {
    "#/overview": '[data-area="functions"] .count:not(:text("…"))',
    "#/collections": '[data-collection="users"]',
    "#/functions/hello": "[data-invocation]",
    "#/records/users": "tbody tr td",
    "#/storage": '[data-bucket="avatars"]',
  };
  for (const [hash, loaded] of Object.entries(pages)) {
    await page.goto(aura.url + "/_/" + hash);
    await page.locator(loaded).first().waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `${hash} overflows the window by ${overflow}px`);
    for (const control of [page.getByRole("button", { name: "Sign out" }), page.locator("main h1").first()]) {
      const box = await control.boundingBox();
      assert.ok(box && box.x >= 0 && box.x + box.width <= 390, `${hash}: a header control is off screen`);
    }
  }
});
