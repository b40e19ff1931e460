// Secrets, backups, snapshots, the audit log and environments, checked
// through the REST API.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { startAura, uiTest, signIn } from "./harness.mjs";

let aura;
before(async () => (aura = await startAura()));
after(() => aura.stop());

uiTest("secrets are set and removed by name; their values are never shown", [], async (page) => {
  await signIn(page, aura, "secrets");
  await page.getByText("No secrets yet.").waitFor();
  for (const value of ["first-value-123", "second-value-456"]) {
    await page.getByLabel("Secret name").fill("STRIPE_KEY");
    await page.getByLabel("Secret value").fill(value);
    await page.getByRole("button", { name: "Set", exact: true }).click();
    await page.getByRole("status").getByText(/STRIPE_KEY is at version/).waitFor();
  }
  const secrets = (await aura.api("GET", "/api/admin/secrets")).body.secrets;
  assert.deepEqual(secrets.map((s) => [s.name, s.version]), [["STRIPE_KEY", 2]]);
  assert.ok(!(await page.content()).includes("second-value-456"));
  await page.locator('[data-secret="STRIPE_KEY"]').getByRole("button", { name: "Remove" }).click();
  await page.getByRole("button", { name: "Remove for good" }).click();
  await page.getByText("No secrets yet.").waitFor();
  assert.deepEqual((await aura.api("GET", "/api/admin/secrets")).body.secrets, []);
});

uiTest("a backup is taken from the dashboard", [], async (page) => {
  await signIn(page, aura, "backups");
  await page.getByText("No backups yet.").waitFor();
  await page.getByRole("button", { name: "Back up now" }).click();
  await page.getByRole("status").getByText(/Backed up to/).waitFor();
  const backups = (await aura.api("GET", "/api/admin/backups")).body.backups;
  assert.equal(backups.length, 1);
  const row = page.locator(`[data-backup="${backups[0].name}"]`);
  const [download] = await Promise.all([page.waitForEvent("download"), row.getByRole("button", { name: "Download" }).click()]);
  assert.equal(download.suggestedFilename(), `aura-backup-${backups[0].name}.tar`);
  const archive = readFileSync(await download.path());
  assert.ok(archive.length > 1024);
  // A tar archive: the first header names a file of the backup's directory.
  assert.ok(archive.subarray(0, 100).toString("latin1").startsWith(backups[0].name + "/"));
  assert.equal(archive.subarray(257, 262).toString("latin1"), "ustar");
});

uiTest("rolling back to a snapshot previews its plan, then applies it", [], async (page) => {
  assert.equal((await aura.api("POST", "/api/collections", { name: "notes", fields: [{ name: "text", type: "text" }] })).status, 201);
  const definition = (await aura.api("GET", "/api/admin/definition")).body;
  definition.collections.extra = { name: "extra", fields: [{ name: "x", type: "text" }] };
  assert.equal((await aura.api("POST", "/api/admin/definition", definition)).status, 200);
  const snapshots = (await aura.api("GET", "/api/admin/snapshots")).body.snapshots;
  const before = snapshots[snapshots.length - 1];

  await signIn(page, aura, "backups");
  await page.locator(`[data-snapshot="${before.id}"]`).getByRole("button", { name: "Roll back…" }).click();
  const plan = page.getByRole("region", { name: "Rollback plan" });
  await plan.getByText(/delete collection extra/).waitFor();
  assert.equal((await aura.api("GET", "/api/collections/extra")).status, 200, "a preview changes nothing");
  await plan.getByText("This rollback loses data").waitFor();
  await plan.getByRole("button", { name: "Roll back, losing data" }).click();
  await page.getByRole("status").getByText(`Rolled back to snapshot ${before.id}`).waitFor();
  assert.equal((await aura.api("GET", "/api/collections/extra")).status, 404);
  assert.equal((await aura.api("GET", "/api/collections/notes")).status, 200);
});

uiTest("the audit log lists events and filters them", [], async (page) => {
  await aura.api("POST", "/api/auth/register", { email: "ada@example.com", password: "correct horse battery" });
  const failed = await fetch(aura.url + "/api/auth/login", {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ email: "ada@example.com", password: "wrong password" }),
  });
  assert.equal(failed.status, 401);
  await signIn(page, aura, "audit");
  await page.getByRole("cell", { name: "login_failed" }).waitFor();
  await page.getByLabel("Event").fill("register");
  await page.getByRole("button", { name: "Filter" }).click();
  // The filtered list replaces the whole one.
  await page.getByRole("cell", { name: "login_failed" }).waitFor({ state: "detached" });
  await page.getByRole("cell", { name: "register", exact: true }).waitFor();
});

uiTest("an environment created on its page appears in the switcher", [], async (page) => {
  await signIn(page, aura, "environments");
  await page.getByLabel("Environment name").fill("preview");
  await page.getByRole("button", { name: "Create environment" }).click();
  await page.locator('[data-environment="preview"]').waitFor();
  await page.getByLabel("Environment", { exact: true }).selectOption("preview");
  await page.goto(aura.url + "/_/#/collections");
  await page.locator('[data-collection="users"]').waitFor();
  assert.equal(await page.locator('[data-collection="notes"]').count(), 0, "notes is the default environment's");
  const listed = (await aura.api("GET", "/api/admin/environments")).body.environments.map((e) => e.name);
  assert.ok(listed.includes("preview"));
});
