// `aura types` writes types that make the client check collection names,
// field names and field types at compile time (tsc --noEmit on fixtures,
// with @ts-expect-error where a mistake must fail).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { startAura, AURA } from "./aura.mjs";

const sdk = resolve(import.meta.dirname, "../..");
let aura;
before(async () => {
  aura = await startAura();
  await aura.admin("POST", "/api/collections", {
    name: "projects",
    fields: [{ name: "name", type: "text", required: true }],
  });
  await aura.admin("POST", "/api/admin/storage/buckets", { name: "files" });
  await aura.admin("POST", "/api/collections", {
    name: "todo_items",
    fields: [
      { name: "title", type: "text", required: true },
      { name: "level", type: "select", values: ["low", "high"], required: true },
      { name: "views", type: "number" },
      { name: "tags", type: "array", items: "text" },
      { name: "meta", type: "json" },
      { name: "project", type: "relation", collection: "projects" },
      { name: "attachment", type: "file", bucket: "files" },
      { name: "photos", type: "file", bucket: "files", multiple: true },
    ],
  });
});
after(() => aura.stop());

const FIXTURE = `
import { createClient } from "@aura/client";
import type { Schema, TodoItemsRecord } from "./aura";

const aura = createClient<Schema>("http://127.0.0.1:8090");
// Without types, any collection and field goes.
const loose = createClient("http://127.0.0.1:8090");
export const anything = () => loose.records("whatever").create({ any: "field", "n+": 1 });
// A schema written as an interface works too.
interface Mine { notes: TodoItemsRecord }
export const mine = () => createClient<Mine>("http://x").records("notes").list();

export async function fine(): Promise<string> {
  const page = await aura.records("todo_items").list({ expand: ["project", "project.lead"] });
  const todo: TodoItemsRecord = page.items[0];
  const level: "low" | "high" = todo.level;
  const views: number | null = todo.views;
  const project: string | undefined = todo.expand?.project?.name;
  await aura.records("todo_items").create({ title: "x", level: "low", tags: ["a"] });
  await aura.records("todo_items").update(todo.id, { "views+": 1, "tags-": "a" });
  // File fields hold keys, and take files on the way in.
  const key: string | null = todo.attachment;
  await aura.records("todo_items").create({ title: "x", level: "low", attachment: new Blob(["a"]), photos: [new Blob(["p"]), "kept/key.png"] });
  await aura.records("todo_items").update(todo.id, { attachment: null, "photos+": new Blob(["q"]) });
  const results = await aura.batch().records("todo_items").create({ title: "y", level: "high" }).records("projects").create({ name: "p" }).send();
  return level + views + project + todo.created + key + results.length;
}

export async function mistakes() {
  const todo = await aura.records("todo_items").get("id");
  // @ts-expect-error: no such collection
  aura.records("todo_itemz");
  // @ts-expect-error: no such field
  todo.titel;
  // @ts-expect-error: not one of the select's values
  await aura.records("todo_items").create({ title: "x", level: "medium" });
  // @ts-expect-error: a number field takes numbers
  await aura.records("todo_items").update(todo.id, { views: "many" });
  // @ts-expect-error: no such field to create
  await aura.records("todo_items").create({ title: "x", level: "low", colour: "red" });
  // @ts-expect-error: a required field is missing
  await aura.records("todo_items").create({ level: "low" });
  // @ts-expect-error: text cannot be added to
  await aura.records("todo_items").update(todo.id, { "title+": 3 });
  // @ts-expect-error: a text field takes no file
  await aura.records("todo_items").create({ title: new Blob(["x"]), level: "low" });
  // @ts-expect-error: a batch is JSON: no files
  aura.batch().records("todo_items").create({ title: "x", level: "low", attachment: new Blob(["a"]) });
  // @ts-expect-error: no such relation to expand
  await aura.records("todo_items").list({ expand: ["projekt"] });
  // @ts-expect-error: a collection without relations expands nothing
  await aura.records("projects").get("id", { expand: ["owner"] });
  // @ts-expect-error: relations expand to their records
  const wrong: number = todo.expand!.project!.name;
  return wrong;
}
`;

test("aura types output compiles, and wrong names and types fail to", () => {
  const dir = mkdtempSync(join(tmpdir(), "aura-types-"));
  execFileSync(AURA, ["types", "--url", aura.url, "--token", aura.token, "--out", join(dir, "aura.d.ts")]);
  const generated = readFileSync(join(dir, "aura.d.ts"), "utf8");
  assert.match(generated, /level: "low" \| "high";/);
  writeFileSync(join(dir, "fixture.ts"), FIXTURE);
  writeFileSync(join(dir, "tsconfig.json"), JSON.stringify({
    compilerOptions: {
      strict: true, noEmit: true, target: "es2022", module: "es2022", moduleResolution: "bundler",
      lib: ["es2022", "dom"], skipLibCheck: false,
      paths: { "@aura/client": [join(sdk, "client/dist/index.d.ts")] },
    },
    files: ["fixture.ts"],
  }));
  const tsc = join(sdk, "node_modules/.bin/tsc");
  try {
    execFileSync(tsc, ["-p", join(dir, "tsconfig.json")], { encoding: "utf8" });
  } catch (err) {
    assert.fail(`tsc failed:\n${err.stdout}${err.stderr}`);
  }
  // The same fixture without its @ts-expect-error lines fails: the checks are real.
  writeFileSync(join(dir, "fixture.ts"), FIXTURE.replace(/\/\/ @ts-expect-error.*\n/g, ""));
  const failed = (() => {
    try {
      execFileSync(tsc, ["-p", join(dir, "tsconfig.json")], { encoding: "utf8" });
      return "";
    } catch (err) {
      return err.stdout;
    }
  })();
  assert.equal((failed.match(/error TS/g) ?? []).length, 12, failed);
});
