// Records through the SDK: CRUD under rules for two users, filters built
// with `f` from hostile values, paging and cursors, typed errors.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createClient, f, AuraError } from "../dist/index.js";
import { startAura } from "./aura.mjs";

const PASSWORD = "correct horse battery";
let aura, ada, bob;
before(async () => {
  aura = await startAura();
  const made = await aura.admin("POST", "/api/collections", {
    name: "notes",
    fields: [
      { name: "title", type: "text", required: true },
      { name: "views", type: "number", default: 0 },
      { name: "owner", type: "relation", collection: "users" },
    ],
    listRule: "owner = @request.auth.id",
    viewRule: "owner = @request.auth.id",
    createRule: "@request.auth.id != '' && owner = @request.auth.id",
    updateRule: "owner = @request.auth.id",
    deleteRule: "owner = @request.auth.id",
  });
  assert.equal(made.status, 201, JSON.stringify(made.body));
  ada = createClient(aura.url);
  bob = createClient(aura.url);
  await ada.auth.signUp({ email: "ada@example.com", password: PASSWORD });
  await bob.auth.signUp({ email: "bob@example.com", password: PASSWORD });
});
after(() => aura.stop());

test("each user creates, reads, updates and deletes only their own records", async () => {
  const me = (await ada.auth.user()).id;
  const note = await ada.records("notes").create({ title: "mine", owner: me });
  assert.equal(note.views, 0);
  assert.equal((await ada.records("notes").get(note.id)).title, "mine");
  const bumped = await ada.records("notes").update(note.id, { "views+": 2 });
  assert.equal(bumped.views, 2);

  await assert.rejects(bob.records("notes").get(note.id), (err) => err instanceof AuraError && err.status === 404);
  await assert.rejects(
    bob.records("notes").create({ title: "as ada", owner: me }),
    (err) => err instanceof AuraError && err.code === "forbidden",
  );
  assert.equal((await bob.records("notes").list()).totalItems, 0);
  const expanded = await ada.records("notes").get(note.id, { expand: ["owner"] });
  assert.equal(expanded.expand.owner.email, "ada@example.com");

  await ada.records("notes").delete(note.id);
  await assert.rejects(ada.records("notes").get(note.id), (err) => err.code === "record_not_found");
});

test("values in f-filters cannot change the expression", async () => {
  const me = (await ada.auth.user()).id;
  const hostile = ['a" || title != "', "back\\slash", "it's", 'quote " and \\"', "%_*"];
  for (const title of [...hostile, "plain"]) await ada.records("notes").create({ title, owner: me });
  for (const title of hostile) {
    const page = await ada.records("notes").list({ filter: f`title = ${title}` });
    assert.deepEqual(page.items.map((r) => r.title), [title], `exactly the record titled ${title}`);
  }
  assert.equal(f`n = ${1.5} && ok = ${true} && none = ${null}`, "n = 1.5 && ok = true && none = null");
  assert.throws(() => f`n = ${NaN}`, TypeError);
  assert.throws(() => f`n = ${{}}`, TypeError);
});

test("pages, cursors, sorting, and errors with their details", async () => {
  const me = (await bob.auth.user()).id;
  for (let i = 0; i < 25; i++) await bob.records("notes").create({ title: `n${String(i).padStart(2, "0")}`, owner: me });
  const page = await bob.records("notes").list({ sort: "-title", perPage: 10, page: 2 });
  assert.equal(page.totalItems, 25);
  assert.equal(page.totalPages, 3);
  assert.equal(page.items[0].title, "n14");
  const all = [];
  for await (const note of bob.records("notes").iterate({ sort: "title", perPage: 7 })) all.push(note.title);
  assert.equal(all.length, 25);
  assert.deepEqual(all, [...all].sort());

  await assert.rejects(bob.records("notes").list({ filter: "title = = 1" }), (err) => {
    assert.ok(err instanceof AuraError);
    assert.equal(err.code, "invalid_filter");
    assert.equal(typeof err.details.position, "number");
    return true;
  });
  await assert.rejects(
    bob.records("notes").create({ owner: me }),
    (err) => err.code === "validation_failed" && err.details.fields.title.code === "required",
  );
});

test("names and keys cannot climb out of their endpoint", async () => {
  for (const attempt of [
    async () => ada.storage.bucket("files").remove("../../collections/notes/records/x"),
    async () => ada.storage.bucket("..").list(),
    async () => ada.records("..").list(),
    async () => ada.records("notes").get("%2e%2e"),
    async () => ada.functions.invoke("..", { path: "/api/auth/sessions" }),
    async () => ada.functions.invoke("hello", { path: "/a/../../api/auth/sessions" }),
  ]) {
    await assert.rejects(attempt(), (err) => err instanceof AuraError && err.code === "invalid_name");
  }
});

test("f writes numbers as the filter language reads them, and refuses quoted placeholders", () => {
  assert.equal(f`n = ${1e21}`, "n = 1000000000000000000000");
  assert.equal(f`n = ${1e-7}`, "n = 0.0000001");
  assert.equal(f`n = ${-0}`, "n = 0");
  assert.throws(() => f`n = ${1e-30}`, TypeError);
  assert.throws(() => f`title = '${"x"}'`, TypeError);
  assert.throws(() => f`title = "${"x"}"`, TypeError);
});

test("a record and its files go up in one request, and a refused one leaves no file", async () => {
  const made = await aura.admin("POST", "/api/admin/storage/buckets", { name: "attachments", viewRule: "", createRule: "@request.auth.id != ''" });
  assert.equal(made.status, 201, JSON.stringify(made.body));
  const collection = await aura.admin("POST", "/api/collections", {
    name: "reports",
    fields: [
      { name: "title", type: "text", required: true, max: 20 },
      { name: "pages", type: "number" },
      { name: "meta", type: "json" },
      { name: "file", type: "file", bucket: "attachments" },
      { name: "pictures", type: "file", bucket: "attachments", multiple: true },
    ],
    listRule: "", viewRule: "", createRule: "@request.auth.id != ''", updateRule: "@request.auth.id != ''",
  });
  assert.equal(collection.status, 201, JSON.stringify(collection.body));
  const reports = ada.records("reports");
  const file = new File(["the report"], "report.txt", { type: "text/plain" });
  const report = await reports.create({ title: "Q3", pages: 12, meta: { tags: ["a"] }, file, pictures: [new Blob(["1"]), new Blob(["2"])] });
  assert.equal(report.pages, 12);
  assert.deepEqual(report.meta, { tags: ["a"] });
  assert.match(report.file, /^reports\/[a-z0-9]+\/report\.txt$/);
  assert.equal(report.pictures.length, 2);
  assert.equal(await (await ada.storage.bucket("attachments").download(report.file)).text(), "the report");

  const more = await reports.update(report.id, { "pictures+": new File(["3"], "three.png"), pages: null });
  assert.equal(more.pictures.length, 3);
  assert.equal(more.pages, null);
  // Keeping some keys and adding a file in one list.
  const kept = await reports.update(report.id, { pictures: [more.pictures[0], new Blob(["4"])] });
  assert.equal(kept.pictures[0], more.pictures[0]);
  assert.equal(kept.pictures.length, 2);

  const before = (await aura.admin("GET", "/api/storage/attachments")).body.objects.length;
  await assert.rejects(
    reports.create({ title: "a title longer than twenty characters", file: new Blob(["x"]) }),
    (err) => err instanceof AuraError && err.code === "validation_failed" && "title" in err.details.fields,
  );
  await assert.rejects(
    createClient(aura.url).records("reports").create({ title: "anonymous", file: new Blob(["x"]) }),
    (err) => err instanceof AuraError && err.status === 403,
  );
  assert.equal((await aura.admin("GET", "/api/storage/attachments")).body.objects.length, before, "no file is left behind");
});

test("a batch writes all its records or none", async () => {
  const me = (await ada.auth.user()).id;
  const [first, second, gone] = await ada
    .batch()
    .records("notes").create({ title: "batch one", owner: me })
    .records("notes").create({ id: "batchtwobatchtw", title: "batch two", owner: me })
    .records("notes").update("batchtwobatchtw", { "views+": 5 })
    .send();
  assert.equal(first.title, "batch one");
  assert.equal(second.title, "batch two");
  assert.equal(gone.views, 5);

  const bobId = (await bob.auth.user()).id;
  const batch = ada.batch().records("notes").create({ title: "never", owner: me }).records("notes").create({ title: "as bob", owner: bobId });
  assert.equal(batch.size, 2);
  await assert.rejects(batch.send(), (err) => err instanceof AuraError && err.code === "forbidden" && err.details.index === 1);
  assert.equal((await ada.records("notes").list({ filter: f`title = ${"never"}` })).totalItems, 0);
  const [deleted] = await ada.batch().records("notes").delete("batchtwobatchtw").send();
  assert.equal(deleted, null);
});
