// The Realtime page: the inspector, publishing, presence and channel rules,
// checked through the REST API.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startAura, uiTest, signIn } from "./harness.mjs";

let aura;
before(async () => (aura = await startAura()));
after(() => aura.stop());

uiTest("the inspector shows events published from the page and from elsewhere", ["ERR_ABORTED"], async (page) => {
  await signIn(page, aura, "realtime");
  const inspector = page.getByRole("region", { name: "Inspector" });
  await inspector.getByLabel("Patterns").fill("chat.*");
  await inspector.getByRole("button", { name: "Subscribe" }).click();
  await inspector.locator('[data-event="ready"]').waitFor();
  await inspector.getByRole("status", { name: "Inspector state" }).getByText("listening").waitFor();

  const publish = page.getByRole("form", { name: "Publish" });
  await publish.getByLabel("Channel").fill("chat.lobby");
  await publish.getByLabel("Event JSON").fill('{"text": "from the page"}');
  await publish.getByRole("button", { name: "Publish" }).click();
  await inspector.getByText('"text":"from the page"').waitFor();

  const sent = await aura.api("POST", "/api/realtime/channels/chat.kitchen", { text: "from curl" });
  assert.equal(sent.status, 202);
  await inspector.getByText('"channel":"chat.kitchen"').waitFor();
  await inspector.getByText('"text":"from curl"').waitFor();
  // Not every channel: news is not subscribed.
  await aura.api("POST", "/api/realtime/channels/news.today", { text: "elsewhere" });
  await aura.api("POST", "/api/realtime/channels/chat.last", { text: "last" });
  await inspector.getByText('"text":"last"').waitFor();
  assert.equal(await inspector.getByText("elsewhere").count(), 0);

  await inspector.getByRole("button", { name: "Stop" }).click();
  await inspector.getByRole("status", { name: "Inspector state" }).getByText("stopped").waitFor();
});

uiTest("channel rules are set and removed; a bad pattern is refused", ["400"], async (page) => {
  await signIn(page, aura, "realtime");
  const rules = page.getByRole("region", { name: "Channel rules" });
  await rules.getByLabel("Channel pattern").fill("chat.{id}");
  await rules.getByRole("button", { name: "Save rule" }).click();
  await page.getByRole("alert").getByText("invalid_rule").waitFor();
  assert.deepEqual((await aura.api("GET", "/api/admin/realtime/rules")).body.rules, []);

  await rules.getByLabel("Channel pattern").fill("chat.{room}");
  await rules.getByLabel("Subscribe rule").selectOption("expression");
  await rules.getByLabel("Subscribe expression").fill('@request.auth.id != ""');
  await rules.getByLabel("Publish rule").selectOption("everyone");
  await rules.getByRole("button", { name: "Save rule" }).click();
  await rules.locator('[data-pattern="chat.{room}"]').waitFor();
  const stored = (await aura.api("GET", "/api/admin/realtime/rules")).body.rules;
  assert.deepEqual(stored, [{ pattern: "chat.{room}", subscribeRule: '@request.auth.id != ""', publishRule: "" }]);

  await rules.locator('[data-pattern="chat.{room}"]').getByRole("button", { name: "Remove" }).click();
  await rules.getByText("No channel rules").waitFor();
  assert.deepEqual((await aura.api("GET", "/api/admin/realtime/rules")).body.rules, []);
});

uiTest("presence lists who has joined a channel", [], async (page) => {
  const controller = new AbortController();
  const stream = await fetch(aura.url + "/api/realtime?channels=room.one&join=room.one&state=" + encodeURIComponent('{"typing":true}'), {
    headers: { authorization: `Bearer ${aura.token}` }, signal: controller.signal,
  });
  assert.equal(stream.status, 200);
  try {
    await signIn(page, aura, "realtime");
    const presence = page.getByRole("region", { name: "Presence" });
    await presence.getByLabel("Presence channel").fill("room.one");
    for (let i = 0; i < 50; i++) {
      await presence.getByRole("button", { name: "Show members" }).click();
      if (await presence.getByText('{"typing":true}').count()) break;
      await page.waitForTimeout(100);
    }
    await presence.getByText('{"typing":true}').waitFor();
  } finally {
    controller.abort();
  }
});
