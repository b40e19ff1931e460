// The Collections page and the Records grid, checked through the REST API.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { startAura, uiTest, signIn } from "./harness.mjs";

let aura;
before(async () => (aura = await startAura()));
after(() => aura.stop());

async function addField(page, name, type) {
  await page.getByRole("button", { name: "Add field" }).click();
  const field = page.locator("fieldset.field").last();
  await field.getByLabel("Field name").fill(name);
  await field.getByLabel("Field type").selectOption(type);
  return field;
}

uiTest("a collection made in the editor is previewed, then applied", [], async (page) => {
  await signIn(page, aura, "collections");
  await page.locator('[data-collection="users"]').waitFor();
  await page.getByRole("link", { name: "New collection" }).click();
  await page.getByLabel("Collection name").fill("todos");
  const title = await addField(page, "title", "text");
  await title.getByText("required").click();
  await title.getByLabel("Max").fill("20");
  await addField(page, "done", "bool");
  const priority = await addField(page, "priority", "select");
  await priority.getByLabel("Values").fill("low, high");
  await page.getByLabel("Create rule").selectOption("everyone");
  await page.getByLabel("List rule").selectOption("expression");
  await page.getByLabel("List expression").fill("done = false");

  await page.getByRole("button", { name: "Preview changes" }).click();
  await page.getByRole("region", { name: "Plan" }).getByText("create collection `todos`").waitFor();
  assert.equal((await aura.api("GET", "/api/collections/todos")).status, 404, "a preview changes nothing");

  await page.getByRole("button", { name: "Apply", exact: true }).click();
  await page.getByRole("heading", { name: "Collection todos" }).waitFor();
  const stored = (await aura.api("GET", "/api/collections/todos")).body;
  assert.deepEqual(stored.fields.map((f) => [f.name, f.type]), [["title", "text"], ["done", "bool"], ["priority", "select"]]);
  assert.equal(stored.fields[0].required, true);
  assert.equal(stored.fields[0].max, 20);
  assert.deepEqual(stored.fields[2].values, ["low", "high"]);
  assert.equal(stored.createRule, "");
  assert.equal(stored.listRule, "done = false");
  assert.equal(stored.viewRule, undefined);
  await page.getByRole("cell", { name: /create collection `todos`/ }).waitFor();
});

uiTest("an invalid rule is shown beside it and changes nothing", ["400"], async (page) => {
  await signIn(page, aura, "collections/todos");
  await page.getByLabel("List expression").fill("done = = false");
  await page.getByRole("button", { name: "Preview changes" }).click();
  await page.locator('[data-rule="listRule"] [role="alert"]').waitFor();
  await page.getByRole("alert").getByText("invalid_schema").first().waitFor();
  assert.equal((await aura.api("GET", "/api/collections/todos")).body.listRule, "done = false");
});

uiTest("a change that loses data says so and needs its own confirmation", ["409"], async (page) => {
  const made = await aura.api("POST", "/api/collections/todos/records", { title: "keep", priority: "high" });
  assert.equal(made.status, 201);
  await signIn(page, aura, "collections/todos");
  await page.locator("fieldset.field").nth(2).getByRole("button", { name: "Remove" }).click();
  await page.getByRole("button", { name: "Preview changes" }).click();
  const plan = page.getByRole("region", { name: "Plan" });
  await plan.getByText("This change loses data").waitFor();
  assert.equal(await plan.getByRole("button", { name: "Apply", exact: true }).count(), 0);
  await plan.getByRole("button", { name: "Apply, losing this data" }).click();
  await page.getByRole("status").getByText("Applied").waitFor();
  const stored = (await aura.api("GET", "/api/collections/todos")).body;
  assert.deepEqual(stored.fields.map((f) => f.name), ["title", "done"]);
  const record = (await aura.api("GET", `/api/collections/todos/records/${made.body.id}`)).body;
  assert.equal(record.title, "keep");
  assert.equal((await aura.api("GET", "/api/collections/todos/migrations")).body.migrations.length, 2);
});

uiTest("records are created in the side panel, with the server's field errors", ["400"], async (page) => {
  await signIn(page, aura, "records/todos");
  await page.getByRole("button", { name: "New record" }).click();
  const panel = page.getByRole("complementary", { name: "New record" });
  await panel.getByLabel(/^title/).fill("a title much longer than twenty characters");
  await panel.getByRole("button", { name: "Create" }).click();
  await panel.locator('[data-field="title"] [role="alert"]').waitFor();
  assert.equal((await aura.api("GET", "/api/collections/todos/records")).body.totalItems, 1, "nothing was created");

  await panel.getByLabel(/^title/).fill("write tests");
  await panel.getByLabel(/^done/).check();
  await panel.getByRole("button", { name: "Create" }).click();
  await page.getByRole("cell", { name: "write tests" }).waitFor();
  const items = (await aura.api("GET", "/api/collections/todos/records?filter=" + encodeURIComponent('title = "write tests"'))).body.items;
  assert.equal(items.length, 1);
  assert.equal(items[0].done, true);

  await page.locator(`[data-record="${items[0].id}"]`).getByRole("button", { name: items[0].id }).click();
  const edit = page.getByRole("complementary", { name: `Record ${items[0].id}` });
  await edit.getByLabel(/^title/).fill("write more tests");
  const [patch] = await Promise.all([
    page.waitForRequest((r) => r.method() === "PATCH"),
    edit.getByRole("button", { name: "Save" }).click(),
  ]);
  assert.deepEqual(JSON.parse(patch.postData()), { title: "write more tests" }, "only what changed is sent");
  await page.getByRole("cell", { name: "write more tests" }).waitFor();
  assert.equal((await aura.api("GET", `/api/collections/todos/records/${items[0].id}`)).body.title, "write more tests");
});

uiTest("the grid filters in the rule language, sorts, pages and deletes in bulk", ["400"], async (page) => {
  for (let i = 0; i < 12; i++) {
    await aura.api("POST", "/api/collections/todos/records", { title: `item ${String(i).padStart(2, "0")}`, done: i % 2 === 0 });
  }
  await signIn(page, aura, "records/todos");
  await page.getByRole("status", { name: "Page" }).getByText("14 records").waitFor();

  await page.getByLabel("Filter").fill("done = = true");
  await page.getByRole("button", { name: "Apply" }).click();
  await page.locator('[data-error="invalid_filter"]').waitFor();

  await page.getByLabel("Filter").fill('done = true && title ~ "item"');
  await page.getByRole("button", { name: "Apply" }).click();
  await page.getByRole("status", { name: "Page" }).getByText("6 records").waitFor();

  await page.getByRole("button", { name: "title", exact: true }).click();
  await page.getByRole("button", { name: "title ▲" }).click();
  await page.getByRole("button", { name: "title ▼" }).waitFor();
  // Descending: the last item of the filter comes first once the reload lands.
  await page.locator("tbody tr").first().locator('[data-column="title"]').getByText("item 10", { exact: true }).waitFor();
  assert.equal(await page.locator("tbody tr[data-record]").count(), 6);

  await page.getByLabel("Per page").selectOption("10");
  await page.getByLabel("Filter").fill("");
  await page.getByRole("button", { name: "Apply" }).click();
  await page.getByRole("status", { name: "Page" }).getByText("Page 1 of 2").waitFor();
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByRole("status", { name: "Page" }).getByText("Page 2 of 2").waitFor();
  await page.getByText("cursor paging").click();
  await page.getByText("Page 1", { exact: true }).waitFor();
  const rows = () => page.locator("tbody tr[data-record]").evaluateAll((trs) => trs.map((tr) => tr.dataset.record));
  await page.waitForFunction(() => document.querySelectorAll("tbody tr[data-record]").length === 10);
  const firstPage = await rows();
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByText("Page 2", { exact: true }).waitFor();
  await page.waitForFunction(() => document.querySelectorAll("tbody tr[data-record]").length === 4);
  const secondPage = await rows();
  assert.equal(new Set([...firstPage, ...secondPage]).size, 14, "the pages do not overlap");

  await page.getByLabel("Select all").check();
  await page.getByRole("button", { name: "Delete selected (4)" }).click();
  await page.getByRole("button", { name: "Delete 4 for good" }).click();
  await page.getByRole("status").getByText("Deleted 4 of 4").waitFor();
  assert.equal((await aura.api("GET", "/api/collections/todos/records")).body.totalItems, 10);
});

uiTest("records export as CSV and JSON and import back, reporting rows that fail", ["400"], async (page) => {
  await signIn(page, aura, "records/todos");
  await page.getByLabel("Filter").fill("done = true");
  await page.getByRole("button", { name: "Apply" }).click();
  const [csv] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Export CSV" }).click()]);
  assert.equal(csv.suggestedFilename(), "todos.csv");
  const lines = readFileSync(await csv.path(), "utf8").trim().split(/\r\n/);
  const matching = (await aura.api("GET", "/api/collections/todos/records?filter=done%3Dtrue&perPage=500")).body.items;
  assert.equal(lines[0], "id,title,done,created,updated");
  assert.equal(lines.length, matching.length + 1);

  const [json] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Export JSON" }).click()]);
  const exported = JSON.parse(readFileSync(await json.path(), "utf8"));
  assert.deepEqual(exported.map((r) => r.id).sort(), matching.map((r) => r.id).sort());

  const rows = [
    { title: "imported one", done: true },
    { title: "imported, two", done: false },
    { title: "far too long to fit in twenty characters", done: false },
  ];
  const file = ["title,done", ...rows.map((r) => `"${r.title}",${r.done}`)].join("\n");
  await page.locator('input[type="file"]').setInputFiles({ name: "more.csv", mimeType: "text/csv", buffer: Buffer.from(file) });
  const report = page.locator("[data-import]");
  await report.getByText("Imported 2 of 3 records.").waitFor();
  await report.getByText(/row 3: validation_failed: title/).waitFor();
  const found = (await aura.api("GET", "/api/collections/todos/records?filter=" + encodeURIComponent('title ~ "imported"'))).body.items;
  assert.deepEqual(found.map((r) => r.title).sort(), ["imported one", "imported, two"]);
});

uiTest("relations expand in the grid", ["400"], async (page) => {
  await aura.api("POST", "/api/collections", { name: "people", fields: [{ name: "name", type: "text" }] });
  await aura.api("POST", "/api/collections", {
    name: "tasks", fields: [{ name: "what", type: "text" }, { name: "owner", type: "relation", collection: "people" }],
  });
  const grace = (await aura.api("POST", "/api/collections/people/records", { name: "Grace" })).body;
  await aura.api("POST", "/api/collections/tasks/records", { what: "compile", owner: grace.id });
  await signIn(page, aura, "records/tasks");
  const owner = page.locator('tbody [data-column="owner"]').first();
  assert.equal(await owner.textContent(), grace.id);
  await page.getByLabel("Expand").fill("nobody");
  await page.getByRole("button", { name: "Apply" }).click();
  await page.locator('[data-error="invalid_expand"]').waitFor();
  await page.getByLabel("Expand").fill("owner");
  await page.getByRole("button", { name: "Apply" }).click();
  await owner.getByText('"name":"Grace"').waitFor();

  // Choosing another collection shows its records from a clean grid.
  await page.getByLabel("Collection", { exact: true }).selectOption("people");
  await page.locator('tbody [data-column="name"]').getByText("Grace").waitFor();
  assert.equal(await page.getByLabel("Expand").inputValue(), "");
  assert.equal(await page.locator('tbody [data-column="owner"]').count(), 0);
});

uiTest("a CSV export imports back to the same records, JSON strings and lists included", [], async (page) => {
  await aura.api("POST", "/api/collections", {
    name: "mixed",
    fields: [
      { name: "t", type: "text" }, { name: "meta", type: "json" }, { name: "tags", type: "array", items: "text" },
      { name: "flag", type: "bool" }, { name: "n", type: "number" },
    ],
  });
  const originals = [
    { t: "a, with \"quotes\"\nand a line", meta: "hello", tags: ["x", "y"], flag: true, n: 3.5 },
    { t: "b", meta: { a: [1, "two"] }, tags: [], flag: false, n: 0 },
    { t: "c", meta: "42", tags: ["only"], flag: false, n: -1 },
  ];
  for (const record of originals) assert.equal((await aura.api("POST", "/api/collections/mixed/records", record)).status, 201);
  const before = (await aura.api("GET", "/api/collections/mixed/records?sort=t")).body.items;

  await signIn(page, aura, "records/mixed");
  await page.getByRole("status", { name: "Page" }).getByText("3 records").waitFor();
  const [csv] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Export CSV" }).click()]);
  const file = readFileSync(await csv.path());
  for (const record of before) assert.equal((await aura.api("DELETE", `/api/collections/mixed/records/${record.id}`)).status, 204);

  await page.locator('input[type="file"]').setInputFiles({ name: "mixed.csv", mimeType: "text/csv", buffer: file });
  await page.locator("[data-import]").getByText("Imported 3 of 3 records.").waitFor();
  const after = (await aura.api("GET", "/api/collections/mixed/records?sort=t")).body.items;
  const strip = ({ created, updated, ...rest }) => rest;
  assert.deepEqual(after.map(strip), before.map(strip));
});
