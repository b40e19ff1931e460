// Builds a JavaScript or TypeScript function into a WebAssembly component:
// bundles it with esbuild (npm packages and the `@aura/function/*`
// wrappers included, `aura:*` left as imports), writes the smallest world for the `aura:platform` interfaces
// the bundle imports (componentize-js keeps every import a world names,
// and Aura asks a grant for each), then componentizes it with the
// StarlingMonkey engine. `aura build` writes this file and the WIT beside
// it into `.aura/`, and runs it from the project:
//
//   node .aura/build.mjs ENTRY OUT
//
// The last line printed is a JSON summary for `aura build`.
import { build } from "esbuild";
import { componentize } from "@bytecodealliance/componentize-js";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

const [entry, out] = process.argv.slice(2);
if (!entry || !out) {
  console.error("usage: node .aura/build.mjs ENTRY OUT");
  process.exit(2);
}
const here = import.meta.dirname;
const started = performance.now();

const bundled = await build({
  entryPoints: [entry],
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  external: ["aura:*", "wasi:*"],
  // `@aura/function/db` and the rest: the wrappers beside this script.
  alias: { "@aura/function": join(here, "function") },
  outfile: join(here, "bundle.js"),
  metafile: true,
  logLevel: "warning",
});
const imports = new Set();
for (const output of Object.values(bundled.metafile.outputs)) {
  for (const { path, external } of output.imports) {
    if (external && path.startsWith("aura:platform/")) imports.add(path);
  }
}

// The function's world: what it imports of the platform, and the HTTP
// handler StarlingMonkey's fetch event serves (WASI 0.2.10).
const world = [
  "package aura:function;",
  "world function {",
  ...[...imports].sort().map((name) => `  import ${name};`),
  "  export wasi:http/incoming-handler@0.2.10;",
  "}",
  "",
].join("\n");
writeFileSync(join(here, "wit", "world.wit"), world);

await allowFileAccess();
const { component } = await componentize({
  sourcePath: join(here, "bundle.js"),
  witPath: join(here, "wit"),
  worldName: "function",
});
mkdirSync(dirname(resolve(out)), { recursive: true });
writeFileSync(out, component);
console.log(JSON.stringify({ out, bytes: component.byteLength, ms: Math.round(performance.now() - started), imports: [...imports].sort() }));

/**
 * The WASI shims that the bundled wasm-tools run on start with no
 * preopened directories, so reading the WIT folder fails ("os error 44"):
 * open the filesystem to every copy of the shim the tools load.
 */
async function allowFileAccess() {
  const shims = new Set();
  for (let dir = here; ; dir = dirname(dir)) {
    const modules = join(dir, "node_modules", "@bytecodealliance");
    for (const owner of ["", "componentize-js", "jco-transpile", "jco"]) {
      const shim = join(modules, owner, owner ? "node_modules/@bytecodealliance" : "", "preview2-shim/dist/nodejs/filesystem.js");
      if (existsSync(shim)) shims.add(shim);
    }
    if (dirname(dir) === dir) break;
  }
  for (const shim of shims) (await import(shim))._setPreopens({ "/": "/" });
}
