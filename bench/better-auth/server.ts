// Hono + Better-Auth on Bun, for bench/auth.py: email and password accounts
// in SQLite (bun:sqlite, WAL), the bearer plugin so a token can stand in for
// the session cookie, rate limit off (every request comes from 127.0.0.1).
// Better-Auth's defaults otherwise: scrypt password hashes, database sessions.
//   PORT=8787 DB=/tmp/auth.sqlite bun server.ts
import { Database } from "bun:sqlite";
import { betterAuth } from "better-auth";
import { getMigrations } from "better-auth/db/migration";
import { bearer } from "better-auth/plugins";
import { Hono } from "hono";

const port = Number(process.env.PORT ?? 8787);
const db = new Database(process.env.DB ?? "better-auth.sqlite");
db.exec("PRAGMA journal_mode = WAL");

const options = {
  database: db,
  baseURL: `http://127.0.0.1:${port}`,
  secret: process.env.BETTER_AUTH_SECRET ?? "bench-only-secret-0123456789abcdef0123456789abcdef",
  emailAndPassword: { enabled: true },
  rateLimit: { enabled: false },
  telemetry: { enabled: false },
  plugins: [bearer()],
};
const { runMigrations } = await getMigrations(options);
await runMigrations();
const auth = betterAuth(options);

const app = new Hono();
app.on(["GET", "POST"], "/api/auth/*", (c) => auth.handler(c.req.raw));

Bun.serve({ hostname: "127.0.0.1", port, fetch: app.fetch });
console.log(`listening on 127.0.0.1:${port}`);
