// The size a browser app pays for the SDK: a sample that signs in, lists
// records and subscribes to their changes, bundled and minified with
// esbuild, then gzipped. Prints one line; `bench/` and sdk/js/README.md
// quote it.
import { build } from "esbuild";
import { gzipSync } from "node:zlib";
import { resolve } from "node:path";

const sample = `
import { createClient, f } from "@aura/client";
const aura = createClient("https://example.com");
await aura.auth.signIn({ email: "a@example.com", password: "secret password" });
const user = await aura.auth.user();
const page = await aura.records("todos").list({ filter: f\`owner = \${user.id}\`, sort: "-created" });
aura.records("todos").subscribe({}, (event) => console.log(event, page));
`;
const result = await build({
  stdin: { contents: sample, resolveDir: resolve(import.meta.dirname, ".."), sourcefile: "sample.js" },
  bundle: true,
  minify: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  write: false,
  alias: { "@aura/client": resolve(import.meta.dirname, "../dist/index.js") },
});
const code = result.outputFiles[0].contents;
const gzipped = gzipSync(code, { level: 9 }).length;
console.log(`@aura/client sample (sign in + list + subscribe): ${(code.length / 1024).toFixed(1)} KB minified, ${(gzipped / 1024).toFixed(1)} KB gzipped`);
