// Checks (or with --write, rewrites) guest-sdk/js/types: the TypeScript
// declarations of the aura:platform interfaces, made by `jco guest-types`
// from the WIT that `aura build` wrote into examples/ts-hello/.aura/wit.
// Run after the examples are built: node scripts/platform-types.mjs [--write]
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const root = resolve(import.meta.dirname, "..");
const examples = join(root, "examples");
const committed = join(root, "guest-sdk/js/types");
const work = mkdtempSync(join(tmpdir(), "aura-types-"));
cpSync(join(examples, "ts-hello/.aura/wit/deps"), join(work, "wit/deps"), { recursive: true });
const interfaces = ["auth", "db", "events", "secrets", "storage"];
writeFileSync(
  join(work, "wit/world.wit"),
  ["package aura:function;", "world function {", ...interfaces.map((i) => `  import aura:platform/${i}@0.1.0;`), "  export wasi:http/incoming-handler@0.2.10;", "}", ""].join("\n"),
);
// The bundled wasm-tools see no files without preopens (see build.mjs).
const shim = join(examples, "node_modules/@bytecodealliance/jco-transpile/node_modules/@bytecodealliance/preview2-shim/dist/nodejs/filesystem.js");
writeFileSync(join(work, "preopen.mjs"), `(await import(${JSON.stringify(shim)}))._setPreopens({ "/": "/" });\n`);
const jco = join(examples, "node_modules/@bytecodealliance/jco/dist/jco.js");
execFileSync("node", ["--import", join(work, "preopen.mjs"), jco, "guest-types", join(work, "wit"), "-n", "function", "-o", join(work, "types"), "-q"], { stdio: "inherit" });

const files = (dir) => readdirSync(dir, { recursive: true }).filter((f) => f.endsWith(".d.ts") && f !== "fetch-event.d.ts").sort();
const fresh = files(join(work, "types"));
if (process.argv.includes("--write")) {
  cpSync(join(work, "types"), committed, { recursive: true });
  console.log(`wrote ${fresh.length} declaration files to guest-sdk/js/types`);
} else {
  const same = (f) => existsSync(join(committed, f)) && readFileSync(join(work, "types", f), "utf8") === readFileSync(join(committed, f), "utf8");
  const stale = fresh.filter((f) => !same(f));
  const extra = files(committed).filter((f) => !fresh.includes(f));
  if (stale.length || extra.length) {
    console.error(`guest-sdk/js/types differs from the WIT (${[...stale, ...extra].join(", ")}): run node scripts/platform-types.mjs --write`);
    process.exit(1);
  }
  console.log("guest-sdk/js/types matches the WIT");
}
