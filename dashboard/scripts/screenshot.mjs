// Renders docs/dashboard.png: the records grid of a small example, in the
// real binary and Chromium. Run from dashboard/: node scripts/screenshot.mjs
import { chromium } from "playwright-core";
import { resolve } from "node:path";
import { startAura, signIn } from "../tests/harness.mjs";

const aura = await startAura();
try {
  await aura.api("POST", "/api/collections", {
    name: "todos",
    fields: [
      { name: "title", type: "text", required: true, max: 200 },
      { name: "done", type: "bool" },
      { name: "priority", type: "select", values: ["low", "normal", "high"] },
      { name: "due", type: "date" },
    ],
    listRule: "@request.auth.id != \"\"",
    createRule: "@request.auth.id != \"\"",
  });
  const todos = [
    ["Write the launch post", false, "high", "2026-12-10"],
    ["Review the storage rules", true, "normal", "2026-12-04"],
    ["Invite the beta testers", false, "high", "2026-12-08"],
    ["Rotate the signing key", true, "low", "2026-12-03"],
    ["Ship the TypeScript SDK", false, "normal", "2026-12-20"],
  ];
  for (const [title, done, priority, due] of todos) {
    await aura.api("POST", "/api/collections/todos/records", { title, done, priority, due });
  }
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: ["--no-sandbox", "--disable-gpu"] });
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 640 }, colorScheme: "light" })).newPage();
  await signIn(page, aura);
  await page.goto(aura.url + "/_/#/records/todos");
  await page.getByLabel("Filter").fill('done = false && priority = "high"');
  await page.getByRole("button", { name: "Apply" }).click();
  await page.getByText("2 records").waitFor();
  const out = resolve(import.meta.dirname, "../../docs/dashboard.png");
  await page.screenshot({ path: out });
  console.log(out);
  await browser.close();
} finally {
  aura.stop();
}
