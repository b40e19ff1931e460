// Runs docs/tutorial.md: its `sh run` blocks in bash, its files written
// out, app.ts type-checked against the generated types and compiled, then
// run against the real binary; what it prints must be the page's output.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { startAura, AURA } from "./aura.mjs";

const sdk = resolve(import.meta.dirname, "../..");
const page = readFileSync(resolve(sdk, "../../docs/tutorial.md"), "utf8");
// Inside the workspace, so `@aura/client` resolves to this build.
const work = join(sdk, ".tutorial-run");

let aura;
before(async () => (aura = await startAura()));
after(() => aura.stop());

/** The page's fenced blocks: info string and body. */
function blocks() {
  return [...page.matchAll(/^```([^\n]*)\n([\s\S]*?)^```$/gm)].map(([, info, body]) => ({ info: info.trim(), body }));
}

test("the tutorial runs as written", () => {
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const env = { ...process.env, AURA_URL: aura.url, AURA_TOKEN: aura.token, PATH: `${dirname(AURA)}:${process.env.PATH}` };
  let output = null;
  for (const { info, body } of blocks()) {
    const file = info.match(/file=(\S+)/)?.[1];
    if (file) writeFileSync(join(work, file), body);
    else if (info === "sh run") execFileSync("bash", ["-euo", "pipefail", "-c", body], { cwd: work, env, stdio: ["ignore", "pipe", "inherit"] });
    else if (info === "text output") output = body;
  }
  assert.ok(output, "the page shows what the app prints");
  writeFileSync(join(work, "tsconfig.json"), JSON.stringify({
    compilerOptions: { strict: true, target: "es2022", module: "es2022", moduleResolution: "bundler", lib: ["es2022", "dom"], types: ["node"], outDir: "." },
    files: ["app.ts"],
  }));
  try {
    execFileSync(join(sdk, "node_modules/.bin/tsc"), ["-p", join(work, "tsconfig.json")], { encoding: "utf8" });
  } catch (err) {
    assert.fail(`app.ts does not compile:\n${err.stdout}`);
  }
  writeFileSync(join(work, "package.json"), JSON.stringify({ type: "module" }));
  const printed = execFileSync("node", [join(work, "app.js")], { cwd: work, env, encoding: "utf8" });
  // The live list's lines and the others each come in the page's order; how
  // they interleave depends on when events arrive.
  const split = (text) => {
    const lines = text.trim().split("\n");
    return [lines.filter((l) => l.startsWith("open todos:")), lines.filter((l) => !l.startsWith("open todos:"))];
  };
  assert.deepEqual(split(printed), split(output), printed);
  rmSync(work, { recursive: true, force: true });
});
