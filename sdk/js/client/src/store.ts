// Where a signed-in session is kept: in memory, in localStorage, or any
// store with the same three (possibly async) methods (React Native's
// AsyncStorage, a cookie jar on a server…).

/** A signed-in session as the SDK keeps it. */
export type Session = {
  accessToken: string;
  refreshToken: string;
  /** When the access token expires, in ms since the epoch. */
  expiresAt: number;
  /** Cookie sessions: the CSRF token to repeat on writes. */
  csrf?: string;
  /** When this client last signed in or refreshed (ms since the epoch). */
  renewedAt?: number;
  user: AuthUser;
};

/** The signed-in user's record. */
export type AuthUser = { id: string; email: string; name?: string | null; roles?: string[]; verified?: boolean; [field: string]: unknown };

export interface SessionStore {
  get(): Session | null | Promise<Session | null>;
  set(session: Session): void | Promise<void>;
  remove(): void | Promise<void>;
}

/** A store that lives as long as the client. */
export function memoryStore(): SessionStore {
  let kept: Session | null = null;
  return {
    get: () => kept,
    set: (session) => {
      kept = session;
    },
    remove: () => {
      kept = null;
    },
  };
}

/** A store in `localStorage` under `key`, shared by the tabs of an origin. */
export function localStorageStore(key = "aura.session"): SessionStore {
  return {
    get: () => {
      const text = globalThis.localStorage?.getItem(key);
      if (!text) return null;
      try {
        return JSON.parse(text) as Session;
      } catch {
        return null;
      }
    },
    set: (session) => globalThis.localStorage?.setItem(key, JSON.stringify(session)),
    remove: () => globalThis.localStorage?.removeItem(key),
  };
}
