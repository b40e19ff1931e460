// `createServerClient` for server-rendered apps (Next.js, Remix, SvelteKit,
// plain Node): the request's session lives in the app's own cookies. Aura
// answers a cookie-mode sign-in with `Set-Cookie`; this client writes those
// into the app's response and sends them back with each call, refreshing
// with the refresh cookie when the access cookie has expired, so the first
// render already knows the user.
import { Auth, defaultLock } from "./auth.js";
import { Transport, type CookieJar } from "./http.js";
import { memoryStore, type AuthUser } from "./store.js";
import { assemble, type AuraClient, type AnySchema } from "./index.js";
import type { RecordBase } from "./records.js";

export type CookieOptions = { maxAge: number; path: string; httpOnly: boolean; sameSite: "lax"; secure: boolean };

/** The app's cookies, as frameworks offer them (`cookies()` in Next.js). */
export interface CookieAdapter {
  getAll(): { name: string; value: string }[];
  /** Absent where the page cannot set cookies (a server component): then refreshed sessions last one request. */
  set?(name: string, value: string, options: CookieOptions): void;
}

type Kept = { value: string; path: string; expires: number };

/** Aura's cookies (`aura_…`) in the app's cookie store. */
export function cookieJar(adapter: CookieAdapter): CookieJar {
  const kept = new Map<string, Kept>();
  for (const { name, value } of adapter.getAll()) {
    // Which Aura path a cookie belongs to is Aura's to say: the refresh
    // cookie only goes to the auth routes, the others everywhere.
    if (name.startsWith("aura_")) kept.set(name, { value, path: name.startsWith("aura_refresh") ? "/api/auth" : "/", expires: Infinity });
  }
  const live = (now = Date.now()) => [...kept].filter(([, c]) => c.expires > now && c.value !== "");
  return {
    header(path) {
      const local = path.replace(/^\/env\/[^/]+/, "") || "/";
      const sent = live().filter(([, c]) => c.path === "/" || local === c.path || local.startsWith(`${c.path}/`));
      return sent.length ? sent.map(([name, c]) => `${name}=${c.value}`).join("; ") : undefined;
    },
    csrf() {
      return live().find(([name]) => name.startsWith("aura_csrf"))?.[1].value;
    },
    needsRefresh() {
      const names = live().map(([name]) => name);
      return !names.some((n) => n.startsWith("aura_access")) && names.some((n) => n.startsWith("aura_refresh"));
    },
    receive(response) {
      for (const line of response.headers.getSetCookie?.() ?? []) {
        const [pair, ...attributes] = line.split(";").map((part) => part.trim());
        const at = pair.indexOf("=");
        const name = pair.slice(0, at);
        if (!name.startsWith("aura_")) continue;
        const value = pair.slice(at + 1);
        const attribute = (key: string) => attributes.find((a) => a.toLowerCase().startsWith(key))?.split("=")[1];
        const maxAge = Number(attribute("max-age") ?? 0);
        const path = attribute("path") ?? "/";
        kept.set(name, { value, path: path.replace(/^\/env\/[^/]+/, "") || "/", expires: maxAge > 0 ? Date.now() + maxAge * 1000 : 0 });
        adapter.set?.(name, maxAge > 0 ? value : "", {
          maxAge: Math.max(maxAge, 0),
          path: "/",
          httpOnly: !name.startsWith("aura_csrf"),
          sameSite: "lax",
          secure: attributes.some((a) => a.toLowerCase() === "secure"),
        });
      }
    },
  };
}

export type ServerClient<S extends { [K in keyof S]: RecordBase }> = AuraClient<S> & {
  /** The signed-in user of this request (from the session cookies), or null. */
  getUser(): Promise<AuthUser | null>;
};

/**
 * A client for one incoming request: signs in, calls and refreshes with
 * the app's cookies. Make one per request; never share it between users.
 */
export function createServerClient<S extends { [K in keyof S]: RecordBase } = AnySchema>(
  url: string,
  options: { cookies: CookieAdapter; env?: string; fetch?: typeof globalThis.fetch },
): ServerClient<S> {
  const http = new Transport(url.replace(/\/+$/, ""), options.env ?? "default", options.fetch ?? globalThis.fetch.bind(globalThis));
  http.cookies = cookieJar(options.cookies);
  const auth = new Auth(http, memoryStore(), defaultLock(), "cookie");
  return {
    ...assemble<S>(http, auth),
    async getUser() {
      if (!http.cookies?.header("/api/auth/me")) return null;
      try {
        return await auth.me();
      } catch {
        return null;
      }
    },
  };
}
