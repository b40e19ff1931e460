// Starts the real aura binary on a free loopback port with a fresh data
// directory, and a Chromium page that fails the test on any page error,
// console error or failed request the test did not expect.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";
import { test } from "node:test";

const root = resolve(import.meta.dirname, "../..");
const target = process.env.CARGO_TARGET_DIR ?? join(root, "target");
export const AURA = process.env.AURA_BIN ?? join(target, "debug/aura");
export const wasm = (name) => join(process.env.AURA_WASM_DIR ?? join(target, "wasm32-wasip2/release"), name + ".wasm");
const SCREENSHOTS = process.env.AURA_SCREENSHOTS ?? join(tmpdir(), "aura-dashboard-screenshots");

export async function startAura() {
  const dataDir = mkdtempSync(join(tmpdir(), "aura-dashboard-"));
  const child = spawn(AURA, ["serve", "--addr", "127.0.0.1:0", "--s3-addr", "off", "--sign-in-link", "always", "--data-dir", dataDir], {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, AURA_LOG: process.env.AURA_LOG || "warn" },
  });
  // The address, then the dashboard's one-time sign-in link.
  const [url, link] = await new Promise((ok, fail) => {
    child.once("exit", (code) => fail(new Error(`aura exited with ${code}`)));
    let url;
    createInterface({ input: child.stdout }).on("line", (line) => {
      const listening = line.match(/^aura: listening on (\S+)/);
      if (listening) url = listening[1];
      const dashboard = line.match(/^aura: dashboard at (\S+)/);
      if (dashboard) ok([url, dashboard[1]]);
    });
  });
  const token = readFileSync(join(dataDir, "admin.token"), "utf8").trim();
  const api = async (method, path, body, headers = {}) => {
    const response = await fetch(url + path, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}), ...headers },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  };
  return { url, link, token, dataDir, api, stop: () => child.kill("SIGTERM") };
}

/** A browser page; `expected` lists substrings of errors the test provokes. */
export async function openPage(t, expected = []) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  const problems = [];
  const unexpected = (text) => !expected.some((e) => text.includes(e));
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error" && unexpected(msg.text())) problems.push(`console error: ${msg.text()}`);
  });
  page.on("requestfailed", (req) => {
    const text = `request failed: ${req.url()} ${req.failure()?.errorText}`;
    if (unexpected(text)) problems.push(text);
  });
  page.on("response", (res) => {
    if (res.status() >= 400 && unexpected(`${res.status()} ${res.url()}`)) problems.push(`HTTP ${res.status()} ${res.url()}`);
  });
  t.after(() => browser.close());
  return {
    page,
    check() {
      if (problems.length) throw new Error("unexpected browser problems:\n" + problems.join("\n"));
    },
  };
}

/** A browser test: `body(page)`, then no unexpected problems; a screenshot on failure. */
export function uiTest(name, expected, body) {
  test(name, async (t) => {
    const { page, check } = await openPage(t, expected);
    try {
      await body(page);
      check();
    } catch (err) {
      await screenshot(page, name);
      throw err;
    }
  });
}

async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const path = join(SCREENSHOTS, name.replace(/\W+/g, "_") + ".png");
  await page.screenshot({ path, fullPage: true }).catch(() => {});
  console.error(`screenshot: ${path}`);
}

/** Signs in with the admin token, then opens the page at `hash` (`records/todos`), if given. */
export async function signIn(page, aura, hash) {
  await page.goto(aura.url + "/_/");
  await page.getByLabel("Admin token").fill(aura.token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("navigation", { name: "Pages" }).waitFor();
  if (hash) await page.goto(aura.url + "/_/#/" + hash);
}
