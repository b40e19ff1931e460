// Users and auth: roles and verified state, sessions, locked accounts,
// signing keys and the outbox, checked through the REST API.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startAura, uiTest, signIn } from "./harness.mjs";

const PASSWORD = "correct horse battery";
let aura;
let ada;
before(async () => {
  aura = await startAura();
  ada = (await aura.api("POST", "/api/auth/register", { email: "ada@example.com", password: PASSWORD })).body.user;
});
after(() => aura.stop());

const post = (path, body) =>
  fetch(aura.url + path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

uiTest("a user's roles and verified state are edited, and their sessions ended", [], async (page) => {
  await signIn(page, aura, "users");
  await page.locator('[data-user="ada@example.com"]').getByRole("button").click();
  const panel = page.getByRole("region", { name: "User ada@example.com" });
  await panel.getByLabel("Roles").fill("editor, admin");
  await panel.getByText("verified").click();
  await panel.getByRole("button", { name: "Save" }).click();
  await page.getByRole("status").getByText("Saved ada@example.com").waitFor();
  const record = (await aura.api("GET", `/api/collections/users/records/${ada.id}`)).body;
  assert.deepEqual(record.roles, ["editor", "admin"]);
  assert.equal(record.verified, true);

  await panel.locator("[data-session]").first().getByRole("button", { name: "End" }).click();
  await panel.getByText("No open sessions.").waitFor();
  assert.deepEqual((await aura.api("GET", `/api/admin/users/${ada.id}/sessions`)).body.sessions, []);
});

uiTest("a locked account is unlocked, and the signing key rotated", [], async (page) => {
  for (let i = 0; i < 5; i++) await post("/api/auth/login", { email: "ada@example.com", password: "wrong password" });
  const keysBefore = (await aura.api("GET", "/api/admin/auth/keys")).body.keys.length;
  await signIn(page, aura, "users");
  const locked = page.getByRole("region", { name: "Locked accounts" });
  await locked.locator('[data-lockout="ada@example.com"]').getByRole("button", { name: "Unlock" }).click();
  await locked.getByText("No account is locked.").waitFor();
  assert.equal((await post("/api/auth/login", { email: "ada@example.com", password: PASSWORD })).status, 200);

  const keys = page.getByRole("region", { name: "Signing keys" });
  await keys.getByRole("button", { name: "Rotate" }).click();
  await page.getByRole("status").getByText("Rotated").waitFor();
  const after = (await aura.api("GET", "/api/admin/auth/keys")).body.keys;
  assert.equal(after.length, keysBefore + 1);
  await keys.locator(`[data-kid="${after.find((k) => k.active).kid}"]`).getByText("signing").waitFor();
});

uiTest("without SMTP, auth mail waits in the outbox", [], async (page) => {
  assert.equal((await post("/api/auth/magic-link", { email: "ada@example.com" })).status, 202);
  await signIn(page, aura, "users");
  const mail = page.getByRole("region", { name: "Outbox" }).locator('[data-mail="ada@example.com"]').first();
  await mail.getByText("ada@example.com").click();
  await mail.getByText(/magic-link\/verify/).waitFor();
});
