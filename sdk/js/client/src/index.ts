// `createClient(url, options)`: one object for an Aura server and
// environment, with `auth`, `records(name)`, `realtime`, `storage` and
// `functions`. No dependencies: fetch, streams and Web Crypto are the
// platform's (browsers, Node 20+, Deno, Bun, workers).
import { Auth, defaultLock, type Lock } from "./auth.js";
import { Transport, browserCookies } from "./http.js";
import { Realtime, type StreamTransport } from "./realtime.js";
import { Records, type RecordBase } from "./records.js";
import { Storage } from "./storage.js";
import { Functions } from "./functions.js";
import { Batch } from "./batch.js";
import { localStorageStore, memoryStore, type SessionStore } from "./store.js";

export { AuraError } from "./errors.js";
export { f, literal, type FilterValue } from "./filter.js";
export { memoryStore, localStorageStore, type Session, type SessionStore, type AuthUser } from "./store.js";
export type { Auth, Lock, SignInResult, AuthChange } from "./auth.js";
export type { Records, RecordBase, ListOptions, Page, RecordEvent, Creatable, Changes, FileKey, ExpandPath } from "./records.js";
export type { Batch } from "./batch.js";
export type { Realtime, StreamTransport, StreamEvent, Subscription, SubscribeOptions, Member, Presence } from "./realtime.js";
export type { LiveQuery, LiveState } from "./live.js";
export type { Storage, Bucket, StoredObject, UploadOptions } from "./storage.js";
export type { Functions, InvokeOptions, AsyncInvocation } from "./functions.js";

/** Collections by name: what `aura types` writes. */
export type Schema = { [name: string]: RecordBase };
/** Any collection, any field: the schema when none is given. */
export type AnySchema = Record<string, RecordBase & Record<string, unknown>>;

export type ClientOptions = {
  /** The environment (default `default`). */
  env?: string;
  /** Where the session is kept: localStorage in browsers, memory elsewhere. */
  store?: SessionStore;
  /** The lock that keeps refreshes one at a time (Web Locks by default). */
  lock?: Lock;
  /** The fetch to use (default the global one). */
  fetch?: typeof globalThis.fetch;
  /**
   * `cookie`: Aura keeps the tokens in HttpOnly cookies (browsers, same
   * site or an allowed CORS origin); the store then holds only the user.
   */
  session?: "token" | "cookie";
  /** How realtime streams are read: `fetch` where it can stream, else `eventsource` (the default picks). */
  realtime?: StreamTransport;
};

export type AuraClient<S extends { [K in keyof S]: RecordBase } = AnySchema> = {
  readonly url: string;
  readonly env: string;
  readonly auth: Auth;
  readonly realtime: Realtime;
  readonly storage: Storage;
  readonly functions: Functions;
  records<K extends keyof S & string>(collection: K): Records<S[K]>;
  /** Record writes to send together, in one transaction. */
  batch(): Batch<S>;
};

export function createClient<S extends { [K in keyof S]: RecordBase } = AnySchema>(url: string, options: ClientOptions = {}): AuraClient<S> {
  const http = new Transport(url.replace(/\/+$/, ""), options.env ?? "default", options.fetch ?? globalThis.fetch.bind(globalThis));
  const key = `aura.session:${http.url}:${http.env}`;
  const store = options.store ?? (typeof localStorage !== "undefined" ? localStorageStore(key) : memoryStore());
  if (options.session === "cookie") http.cookies = browserCookies(http.env);
  return assemble<S>(http, new Auth(http, store, options.lock ?? defaultLock(), options.session ?? "token"), options.realtime);
}

/** The client's parts around one transport and auth service (also for `createServerClient`). */
export function assemble<S extends { [K in keyof S]: RecordBase }>(http: Transport, auth: Auth, streams?: StreamTransport): AuraClient<S> {
  http.tokens = auth;
  const realtime = new Realtime(http, streams);
  // Streams act for whoever was signed in when they connected: when the
  // user changes (here or in another tab), they reconnect as the new one.
  let userId: string | null | undefined;
  auth.onAuthChange((user) => {
    if ((user?.id ?? null) !== userId) realtime.reconnect();
    userId = user?.id ?? null;
  });
  const records = new Map<string, Records<any>>();
  return {
    url: http.url,
    env: http.env ?? "default",
    auth,
    realtime,
    storage: new Storage(http),
    functions: new Functions(http),
    records<K extends keyof S & string>(collection: K): Records<S[K]> {
      let found = records.get(collection);
      if (!found) records.set(collection, (found = new Records(http, realtime, collection)));
      return found;
    },
    batch: () => new Batch<S>(http),
  };
}
