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

/** How to set a cookie; no `maxAge` means a cookie of the browser session. */
export type CookieOptions = { maxAge?: number; path: string; httpOnly: boolean; sameSite: "lax"; secure: boolean };

/** The app's cookies, as frameworks offer them (`cookies()` in Next.js). */
export interface CookieAdapter {
  getAll(): { name: string; value: string }[];
  /** Absent where the page cannot set cookies (a server component): then refreshed sessions last one request. */
  set?(name: string, value: string, options: CookieOptions): void;
}

type Kept = { value: string; path: string; expires: number };

/** Aura's cookies of environment `env` (`aura_access`, or `aura_access.NAME` elsewhere) in the app's cookie store. */
export function cookieJar(adapter: CookieAdapter, env = "default"): CookieJar {
  const name = (base: string) => (env === "default" ? base : `${base}.${env}`);
  const [ACCESS, REFRESH, CSRF] = [name("aura_access"), name("aura_refresh"), name("aura_csrf")];
  const ours = new Set([ACCESS, REFRESH, CSRF]);
  const kept = new Map<string, Kept>();
  for (const cookie of adapter.getAll()) {
    // Which Aura path a cookie belongs to is Aura's to say: the refresh
    // cookie only goes to the auth routes, the others everywhere.
    if (ours.has(cookie.name)) kept.set(cookie.name, { value: cookie.value, path: cookie.name === REFRESH ? "/api/auth" : "/", expires: Infinity });
  }
  const live = (now = Date.now()) => [...kept].filter(([, c]) => c.expires > now && c.value !== "");
  const has = (wanted: string) => live().some(([n]) => n === wanted);
  const save = (cookie: string, value: string, options: CookieOptions) => {
    try {
      adapter.set?.(cookie, value, options);
    } catch {
      // Where the framework forbids setting cookies (a server component), the session lasts this request.
    }
  };
  return {
    header(path) {
      const sent = live().filter(([, c]) => c.path === "/" || path === c.path || path.startsWith(`${c.path}/`));
      return sent.length ? sent.map(([n, c]) => `${n}=${c.value}`).join("; ") : undefined;
    },
    csrf() {
      return live().find(([n]) => n === CSRF)?.[1].value;
    },
    // Without a way to save the new cookies, a refresh would burn the refresh token.
    needsRefresh: () => !!adapter.set && !has(ACCESS) && has(REFRESH),
    receive(response) {
      for (const line of response.headers.getSetCookie?.() ?? []) {
        const [pair, ...attributes] = line.split(";").map((part) => part.trim());
        const at = pair.indexOf("=");
        const cookie = pair.slice(0, at);
        if (!ours.has(cookie)) continue;
        const value = pair.slice(at + 1);
        const attribute = (key: string) => attributes.find((a) => a.toLowerCase().startsWith(`${key}=`))?.slice(key.length + 1);
        const expires = expiry(attribute("max-age"), attribute("expires"));
        const gone = expires <= Date.now();
        kept.set(cookie, { value, path: apiPath(attribute("path") ?? "/"), expires });
        save(cookie, gone ? "" : value, {
          maxAge: gone ? 0 : expires === Infinity ? undefined : Math.round((expires - Date.now()) / 1000),
          path: "/",
          httpOnly: cookie !== CSRF,
          sameSite: "lax",
          secure: attributes.some((a) => a.toLowerCase() === "secure"),
        });
      }
    },
  };
}

/** When a `Set-Cookie` lapses: `Max-Age` wins over `Expires`; neither is the browser session (never, here). */
function expiry(maxAge: string | undefined, expires: string | undefined): number {
  if (maxAge !== undefined && /^-?\d+$/.test(maxAge.trim())) return Number(maxAge) > 0 ? Date.now() + Number(maxAge) * 1000 : 0;
  if (expires !== undefined) return Date.parse(expires) || 0;
  return Infinity;
}

/**
 * A cookie's path as a path of Aura's API: what comes before `/api/` (an
 * environment's `/env/NAME`, a prefix Aura is served under) is not part of
 * the paths the client asks for.
 */
function apiPath(path: string): string {
  const at = path.indexOf("/api/");
  return at >= 0 ? path.slice(at) : path.endsWith("/api") ? "/api" : "/";
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
  http.cookies = cookieJar(options.cookies, http.env ?? "default");
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
