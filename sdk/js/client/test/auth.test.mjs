// Every auth flow through the SDK against the real server, and refresh done
// once however many callers need it.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { createClient, memoryStore, AuraError } from "../dist/index.js";
import { startAura, countingFetch } from "./aura.mjs";

const PASSWORD = "correct horse battery";
let aura;
before(async () => (aura = await startAura()));
after(() => aura.stop());

test("sign up, sign in, profile, sessions and sign out", async () => {
  const client = createClient(aura.url);
  const changes = [];
  client.auth.onAuthChange((user) => changes.push(user?.email ?? null));
  const user = await client.auth.signUp({ email: "ada@example.com", password: PASSWORD, name: "Ada" });
  assert.equal(user.email, "ada@example.com");
  assert.equal((await client.auth.me()).name, "Ada");
  assert.equal((await client.auth.updateProfile({ name: "Ada L." })).name, "Ada L.");
  assert.equal((await client.auth.user()).name, "Ada L.");

  const other = createClient(aura.url);
  const signedIn = await other.auth.signIn({ email: "ada@example.com", password: PASSWORD });
  assert.equal(signedIn.user.id, user.id);
  const { sessions } = await client.auth.sessions();
  assert.equal(sessions.length, 2);
  assert.equal((await client.auth.revokeOtherSessions()).revoked, 1);

  await client.auth.signOut();
  assert.equal(await client.auth.user(), null);
  assert.deepEqual(changes, ["ada@example.com", "ada@example.com", "ada@example.com", null]);
  await assert.rejects(client.auth.me(), (err) => err instanceof AuraError && err.status === 401);

  await assert.rejects(
    client.auth.signIn({ email: "ada@example.com", password: "wrong password" }),
    (err) => err instanceof AuraError && err.code === "invalid_credentials" && err.status === 401,
  );
});

test("magic links and email codes sign in", async () => {
  const client = createClient(aura.url);
  await createClient(aura.url).auth.signUp({ email: "grace@example.com", password: PASSWORD });
  await client.auth.requestMagicLink("grace@example.com");
  const link = (await aura.mail("grace@example.com")).text.match(/token=([\w-]+)/)[1];
  const byLink = await client.auth.signInWithMagicLink(link);
  assert.equal(byLink.user.email, "grace@example.com");

  const coded = createClient(aura.url);
  await coded.auth.requestEmailCode("grace@example.com");
  let code;
  for (let i = 0; i < 100 && !code; i++) {
    const mails = (await aura.admin("GET", "/api/admin/outbox")).body.messages;
    code = mails.find((m) => m.to === "grace@example.com" && /sign-in code/.test(m.subject))?.subject.match(/(\d{6})/)?.[1];
    if (!code) await new Promise((r) => setTimeout(r, 50));
  }
  const byCode = await coded.auth.signInWithEmailCode({ email: "grace@example.com", code });
  assert.equal(byCode.user.email, "grace@example.com");
});

test("a password reset, then the new password signs in", async () => {
  const client = createClient(aura.url);
  await client.auth.signUp({ email: "reset@example.com", password: PASSWORD });
  await client.auth.requestPasswordReset("reset@example.com");
  const token = (await aura.mail("reset@example.com")).text.match(/reset code: (\S+)/)[1];
  await client.auth.resetPassword({ token, password: "a brand new password" });
  const result = await client.auth.signIn({ email: "reset@example.com", password: "a brand new password" });
  assert.equal(result.user.email, "reset@example.com");
});

function totp(secret, at = Date.now()) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of secret) bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(at / 30_000)));
  const mac = createHmac("sha1", key).update(counter).digest();
  const offset = mac[mac.length - 1] & 15;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, "0");
}

test("two-factor sign-in asks for the second step", async () => {
  const client = createClient(aura.url);
  await client.auth.signUp({ email: "mfa@example.com", password: PASSWORD });
  const { secret } = await client.auth.enrollTotp();
  const { recoveryCodes } = await client.auth.enableTotp(totp(secret));
  assert.equal(recoveryCodes.length, 10);

  const fresh = createClient(aura.url);
  const first = await fresh.auth.signIn({ email: "mfa@example.com", password: PASSWORD });
  assert.equal(first.mfaRequired, true);
  assert.equal(await fresh.auth.user(), null, "not signed in before the second step");
  const user = await fresh.auth.verifyTotp({ mfaToken: first.mfaToken, recoveryCode: recoveryCodes[0] });
  assert.equal(user.email, "mfa@example.com");
});

test("ten callers needing a fresh token make one refresh, and nobody is signed out", async () => {
  const counting = countingFetch();
  const store = memoryStore();
  const client = createClient(aura.url, { store, fetch: counting.fetch });
  await client.auth.signUp({ email: "busy@example.com", password: PASSWORD });
  const session = store.get();
  store.set({ ...session, expiresAt: Date.now() - 1000 });
  const answers = await Promise.all(Array.from({ length: 10 }, () => client.auth.me()));
  assert.ok(answers.every((me) => me.email === "busy@example.com"));
  assert.equal(counting.count("/api/auth/refresh"), 1);
  assert.notEqual(store.get().refreshToken, session.refreshToken);
  assert.equal((await client.auth.user()).email, "busy@example.com");
});

test("a token the server refuses is refreshed once and the call retried", async () => {
  const counting = countingFetch();
  const store = memoryStore();
  const client = createClient(aura.url, { store, fetch: counting.fetch });
  await client.auth.signUp({ email: "refused@example.com", password: PASSWORD });
  store.set({ ...store.get(), accessToken: "not.a.token" });
  assert.equal((await client.auth.me()).email, "refused@example.com");
  assert.equal(counting.count("/api/auth/refresh"), 1);
  assert.equal(counting.count("/api/auth/me"), 2);
});

test("a revoked session signs the client out instead of looping", async () => {
  const store = memoryStore();
  const client = createClient(aura.url, { store });
  const user = await client.auth.signUp({ email: "revoked@example.com", password: PASSWORD });
  assert.equal((await aura.admin("DELETE", `/api/admin/users/${user.id}/sessions`)).status, 200);
  store.set({ ...store.get(), expiresAt: 0 });
  await assert.rejects(client.auth.me(), (err) => err instanceof AuraError && err.status === 401);
  assert.equal(await client.auth.user(), null);
});

test("two tabs refreshing with the same token at once both stay signed in", async () => {
  // Separate clients with separate locks: nothing shared but the session.
  const first = memoryStore();
  const tab1 = createClient(aura.url, { store: first });
  await tab1.auth.signUp({ email: "tabs@example.com", password: PASSWORD });
  const second = memoryStore();
  second.set({ ...first.get() });
  const tab2 = createClient(aura.url, { store: second });
  first.set({ ...first.get(), expiresAt: 0 });
  second.set({ ...second.get(), expiresAt: 0 });
  const [a, b] = await Promise.all([tab1.auth.me(), tab2.auth.me()]);
  assert.equal(a.email, "tabs@example.com");
  assert.equal(b.email, "tabs@example.com");
  assert.ok(first.get() && second.get(), "neither tab was signed out");
});
