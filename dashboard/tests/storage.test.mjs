// The Storage page: buckets with rules, the file browser, signed URLs and
// access keys, checked through the REST API.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { startAura, uiTest, signIn } from "./harness.mjs";

let aura;
before(async () => (aura = await startAura()));
after(() => aura.stop());

uiTest("a bucket is created with its rules; a bad rule is shown beside it", ["400"], async (page) => {
  await signIn(page, aura, "storage");
  await page.getByText("No buckets yet.").waitFor();
  const form = page.getByRole("form", { name: "New bucket" });
  await form.getByLabel("Bucket name").fill("docs");
  await form.getByLabel("View rule").selectOption("expression");
  await form.getByLabel("View expression").fill("nope = 1");
  await form.getByRole("button", { name: "Create bucket" }).click();
  await form.locator('[data-rule="viewRule"] [role="alert"]').waitFor();
  assert.deepEqual((await aura.api("GET", "/api/admin/storage/buckets")).body.buckets, []);

  await form.getByLabel("View expression").fill("size < 1000");
  await form.getByRole("button", { name: "Create bucket" }).click();
  await page.getByRole("heading", { name: "docs" }).waitFor();
  const bucket = (await aura.api("GET", "/api/admin/storage/buckets/docs")).body;
  assert.equal(bucket.settings.viewRule, "size < 1000");
  assert.equal(bucket.settings.listRule, undefined);
});

uiTest("files are uploaded, browsed by folder, downloaded, shared and deleted", [], async (page) => {
  const put = await fetch(aura.url + "/api/storage/docs/guides/intro.txt", {
    method: "PUT", headers: { authorization: `Bearer ${aura.token}` }, body: "an introduction",
  });
  assert.equal(put.status, 201);
  await signIn(page, aura, "storage/docs");
  await page.locator('[data-prefix="guides/"]').getByRole("button").click();
  await page.locator('[data-object="guides/intro.txt"]').waitFor();

  await page.locator('input[type="file"]').setInputFiles({ name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("some notes") });
  await page.getByRole("status").getByText("Uploaded guides/notes.txt").waitFor();
  const stored = await fetch(aura.url + "/api/storage/docs/guides/notes.txt", { headers: { authorization: `Bearer ${aura.token}` } });
  assert.equal(await stored.text(), "some notes");

  const row = page.locator('[data-object="guides/notes.txt"]');
  const [download] = await Promise.all([page.waitForEvent("download"), row.getByRole("button", { name: "Download" }).click()]);
  assert.equal(download.suggestedFilename(), "notes.txt");
  assert.equal(readFileSync(await download.path(), "utf8"), "some notes");

  await row.getByRole("button", { name: "Signed URL" }).click();
  const url = await page.getByLabel("Signed URL").inputValue();
  const shared = await fetch(new URL(url, aura.url));
  assert.equal(shared.status, 200);
  assert.equal(await shared.text(), "some notes");

  await row.getByRole("button", { name: "Delete" }).click();
  await row.getByRole("button", { name: "Delete for good" }).click();
  await row.waitFor({ state: "detached" });
  const gone = await fetch(aura.url + "/api/storage/docs/guides/notes.txt", { headers: { authorization: `Bearer ${aura.token}` } });
  assert.equal(gone.status, 404);
});

uiTest("an access key's secret is shown once, when it is created", [], async (page) => {
  await signIn(page, aura, "storage");
  const keys = page.getByRole("region", { name: "Access keys" });
  await keys.getByLabel("Key description").fill("backups");
  await keys.getByLabel("Access to docs").selectOption("read");
  await keys.getByRole("button", { name: "Create key" }).click();
  const secret = await keys.getByLabel("Secret key").inputValue();
  assert.ok(secret.length >= 20);
  const listed = (await aura.api("GET", "/api/admin/storage/keys")).body.keys;
  assert.equal(listed.length, 1);
  assert.deepEqual(listed[0].buckets, { docs: "read" });
  assert.equal(listed[0].secretKey, undefined);
  await page.reload();
  await page.locator(`[data-key="${listed[0].accessKey}"]`).waitFor();
  assert.equal(await page.getByLabel("Secret key").count(), 0);
});
