// The size a browser app pays for its backend's SDK: the same sample (sign
// in, list records, subscribe to their changes) written for @aura/client
// and for PocketBase's official JS SDK, each bundled and minified with
// esbuild and gzipped, in one run. Prints one line per SDK and the ratio.
import { build } from "esbuild";
import { gzipSync } from "node:zlib";
import { resolve } from "node:path";

const samples = {
  "@aura/client": `
import { createClient, f } from "@aura/client";
const aura = createClient("https://example.com");
await aura.auth.signIn({ email: "a@example.com", password: "secret password" });
const user = await aura.auth.user();
const page = await aura.records("todos").list({ filter: f\`owner = \${user.id}\`, sort: "-created" });
aura.records("todos").subscribe({}, (event) => console.log(event, page));
`,
  pocketbase: `
import PocketBase from "pocketbase";
const pb = new PocketBase("https://example.com");
await pb.collection("users").authWithPassword("a@example.com", "secret password");
const user = pb.authStore.record;
const page = await pb.collection("todos").getList(1, 30, { filter: pb.filter("owner = {:id}", { id: user.id }), sort: "-created" });
pb.collection("todos").subscribe("*", (event) => console.log(event, page));
`,
};

const sizes = {};
for (const [name, contents] of Object.entries(samples)) {
  const result = await build({
    stdin: { contents, resolveDir: resolve(import.meta.dirname, ".."), sourcefile: "sample.js" },
    bundle: true,
    minify: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    write: false,
    alias: { "@aura/client": resolve(import.meta.dirname, "../dist/index.js") },
  });
  const code = result.outputFiles[0].contents;
  sizes[name] = gzipSync(code, { level: 9 }).length;
  console.log(`${name} sample (sign in + list + subscribe): ${(code.length / 1024).toFixed(1)} KB minified, ${(sizes[name] / 1024).toFixed(1)} KB gzipped`);
}
console.log(`@aura/client / pocketbase: ${(sizes["@aura/client"] / sizes.pocketbase).toFixed(2)}`);
