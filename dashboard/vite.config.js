import { defineConfig } from "vite";
import { svelte } from "@sveltejs/vite-plugin-svelte";

// Served by the aura binary at /_/; the output is committed (dist/) and
// embedded, so the build must be reproducible byte for byte.
export default defineConfig({
  base: "/_/",
  plugins: [svelte()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    modulePreload: { polyfill: false },
    sourcemap: false,
  },
});
