// Accounts and sessions: every sign-in flow Aura has, the session kept in a
// pluggable store, and refresh done once at a time — one request however
// many callers need a fresh token at once, in this client and (with Web
// Locks, in browsers) across tabs, re-reading the store after taking the
// lock so a tab that waited uses what another tab got.
import { AuraError } from "./errors.js";
import type { Transport, TokenSource } from "./http.js";
import type { AuthUser, Session, SessionStore } from "./store.js";

/** Runs `work` while holding the lock called `name`. */
export type Lock = <T>(name: string, work: () => Promise<T>) => Promise<T>;

/** Web Locks where the platform has them, else a lock within this process. */
export function defaultLock(): Lock {
  const locks = (globalThis.navigator as { locks?: { request: Function } } | undefined)?.locks;
  if (locks?.request) return (name, work) => locks.request(name, work) as ReturnType<typeof work>;
  const tails = new Map<string, Promise<unknown>>();
  return (name, work) => {
    const run = (tails.get(name) ?? Promise.resolve()).then(work, work);
    tails.set(name, run.catch(() => undefined));
    return run;
  };
}

/** A sign-in's answer: tokens, or (cookie sessions) the user and a CSRF token, the tokens being in cookies. */
type Tokens = { accessToken?: string; expiresIn: number; refreshToken?: string; user: AuthUser; csrfToken?: string };
/** A sign-in either signs in, or asks for the second factor first. */
export type SignInResult = { user: AuthUser; mfaRequired?: false } | { mfaRequired: true; mfaToken: string };
export type AuthChange = (user: AuthUser | null) => void;

/** Refresh this long before the access token expires. */
const EARLY_MS = 30_000;
/** Give up on a refresh after this long. */
const REFRESH_TIMEOUT_MS = 30_000;

export class Auth implements TokenSource {
  private refreshing: Promise<Session | null> | null = null;
  /** Cookie sessions: the one attempt to find a session the store forgot. */
  private restored: Promise<AuthUser | null> | null = null;
  private listeners = new Set<AuthChange>();
  private channel: BroadcastChannel | null = null;

  constructor(
    private readonly http: Transport,
    private readonly store: SessionStore,
    private readonly lock: Lock,
    /** `cookie`: the server keeps the tokens in cookies (`?session=cookie`). */
    private readonly sessionMode: "token" | "cookie" = "token",
  ) {
    // Other tabs of this origin hear of sign-ins and sign-outs (where there
    // are tabs; the channel never keeps a Node process alive).
    if (typeof window !== "undefined" && typeof BroadcastChannel !== "undefined") {
      this.channel = new BroadcastChannel(`aura.auth:${http.url}`);
      (this.channel as { unref?: () => void }).unref?.();
      this.channel.onmessage = async () => this.notify((await this.store.get())?.user ?? null, false);
    }
  }

  /**
   * The signed-in user as last known, or null. A cookie session whose kept
   * user is gone (storage cleared) while its cookies live is found again
   * once, through the refresh cookie.
   */
  async user(): Promise<AuthUser | null> {
    const user = (await this.store.get())?.user ?? null;
    if (user || this.sessionMode !== "cookie") return user;
    this.restored ??= this.refreshCookies().then(
      (session) => session?.user ?? null,
      () => null,
    );
    return this.restored;
  }

  /** Calls `listener` on every sign-in, refresh, profile change and sign-out; answers how to stop. */
  onAuthChange(listener: AuthChange): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async signUp(input: { email: string; password: string; name?: string }): Promise<AuthUser> {
    return this.keep(await this.http.json<Tokens>("POST", "/api/auth/register", { body: input, auth: false, query: this.mode() }));
  }

  async signIn(input: { email: string; password: string }): Promise<SignInResult> {
    return this.answer(await this.http.json("POST", "/api/auth/login", { body: input, auth: false, query: this.mode() }));
  }

  /** The second step of a sign-in that asked for it: an authenticator code or a recovery code. */
  async verifyTotp(input: { mfaToken: string; code?: string; recoveryCode?: string }): Promise<AuthUser> {
    return this.keep(await this.http.json<Tokens>("POST", "/api/auth/2fa/totp/verify", { body: input, auth: false, query: this.mode() }));
  }

  requestMagicLink(email: string): Promise<void> {
    return this.http.json("POST", "/api/auth/magic-link", { body: { email }, auth: false });
  }

  /** Signs in with the token of a magic link (`?token=` of the link). */
  async signInWithMagicLink(token: string): Promise<SignInResult> {
    return this.answer(await this.http.json("GET", "/api/auth/magic-link/verify", { query: { token, ...this.mode() }, auth: false }));
  }

  requestEmailCode(email: string): Promise<void> {
    return this.http.json("POST", "/api/auth/otp/request", { body: { email }, auth: false });
  }

  async signInWithEmailCode(input: { email: string; code: string }): Promise<SignInResult> {
    return this.answer(await this.http.json("POST", "/api/auth/otp/verify", { body: input, auth: false, query: this.mode() }));
  }

  /**
   * Where to send the browser to sign in with an OAuth provider. Keep
   * `codeVerifier` (sessionStorage) and pass it to `completeOAuth` with the
   * `?code=` Aura redirects back with (PKCE, S256).
   */
  async oauthUrl(provider: string, redirectTo: string): Promise<{ url: string; codeVerifier: string }> {
    const codeVerifier = base64url(crypto.getRandomValues(new Uint8Array(32)));
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(codeVerifier));
    const url = this.http.href(`/api/auth/oauth/${encodeURIComponent(provider)}`, {
      redirect_to: redirectTo,
      code_challenge: base64url(new Uint8Array(digest)),
    });
    return { url, codeVerifier };
  }

  async completeOAuth(input: { code: string; codeVerifier: string }): Promise<SignInResult> {
    return this.answer(await this.http.json("POST", "/api/auth/oauth/exchange", { body: input, auth: false }));
  }

  /** Ends the session on the server and forgets it here. */
  async signOut(): Promise<void> {
    const session = await this.store.get();
    const logout = () => this.http.json("POST", "/api/auth/logout", {});
    try {
      if (session || this.sessionMode === "cookie") {
        await logout().catch(async (err) => {
          // A lapsed access cookie is not sent, but the refresh cookie is:
          // renew, then end the session, so no cookie outlives the sign-out.
          if (this.sessionMode === "cookie" && err instanceof AuraError && err.status === 401 && (await this.refreshCookies())) return logout();
          throw err;
        });
      }
    } catch (err) {
      // Already over on the server: forgetting it here is all that is left.
      if (!(err instanceof AuraError && err.status === 401)) throw err;
    } finally {
      await this.forget();
    }
  }

  /** The user's record, fresh from the server. */
  async me(): Promise<AuthUser> {
    const user = await this.http.json<AuthUser>("GET", "/api/auth/me");
    await this.update((session) => ({ ...session, user }));
    return user;
  }

  async updateProfile(changes: Record<string, unknown>): Promise<AuthUser> {
    const user = await this.http.json<AuthUser>("PUT", "/api/auth/me", { body: changes });
    await this.update((session) => ({ ...session, user }));
    return user;
  }

  sessions(): Promise<{ sessions: { id: string; userAgent: string | null; ip: string | null; created: string; lastUsed: string | null; expires: string; current: boolean }[] }> {
    return this.http.json("GET", "/api/auth/sessions");
  }

  revokeSession(id: string): Promise<void> {
    return this.http.json("DELETE", `/api/auth/sessions/${encodeURIComponent(id)}`);
  }

  /** Signs out every other device. */
  revokeOtherSessions(): Promise<{ revoked: number }> {
    return this.http.json("DELETE", "/api/auth/sessions");
  }

  requestPasswordReset(email: string): Promise<void> {
    return this.http.json("POST", "/api/auth/password/forgot", { body: { email }, auth: false });
  }

  resetPassword(input: { token: string; password: string }): Promise<void> {
    return this.http.json("POST", "/api/auth/password/reset", { body: input, auth: false });
  }

  requestVerification(): Promise<void> {
    return this.http.json("POST", "/api/auth/verify-email/request", {});
  }

  confirmVerification(token: string): Promise<AuthUser> {
    return this.http.json("POST", "/api/auth/verify-email/confirm", { body: { token }, auth: false });
  }

  enrollTotp(): Promise<{ secret: string; uri: string }> {
    return this.http.json("POST", "/api/auth/2fa/totp/enroll", {});
  }

  enableTotp(code: string): Promise<{ enabled: true; recoveryCodes: string[] }> {
    return this.http.json("POST", "/api/auth/2fa/totp/verify", { body: { code } });
  }

  disableTotp(input: { code?: string; recoveryCode?: string }): Promise<void> {
    return this.http.json("POST", "/api/auth/2fa/totp/disable", { body: input });
  }

  /** The query a sign-in needs in this client's session mode. */
  private mode(): { session?: string } {
    return this.sessionMode === "cookie" ? { session: "cookie" } : {};
  }

  // TokenSource, for the transport.

  async accessToken(): Promise<string | null> {
    if (this.sessionMode === "cookie") {
      // The access cookie lapses with the token: renew it before it does.
      const session = await this.store.get();
      if (session?.csrf) this.http.csrfToken = session.csrf;
      if (session && session.expiresAt - Date.now() <= EARLY_MS) await this.refreshCookies();
      return null;
    }
    const session = await this.store.get();
    if (!session) return null;
    if (session.expiresAt - Date.now() > EARLY_MS) return session.accessToken;
    const fresh = await this.refresh((current) => current.expiresAt - Date.now() <= EARLY_MS);
    return fresh?.accessToken ?? null;
  }

  async refreshAfterRefusal(refused: string | null): Promise<boolean> {
    if (refused === null) return !!(await this.refreshCookies());
    const fresh = await this.refresh((current) => current.accessToken === refused);
    return !!fresh && fresh.accessToken !== refused;
  }

  /** Cookie sessions: the refresh cookie buys new cookies (one refresh at a time). */
  private refreshCookies(): Promise<Session | null> {
    const before = Date.now();
    this.refreshing ??= this.lock(`aura.refresh:${this.http.url}`, async () => {
      // Another tab may have renewed it while this one waited for the lock.
      const kept = await this.store.get();
      if (kept?.renewedAt && kept.renewedAt >= before) return kept;
      try {
        const answer = await this.http.json<Tokens>("POST", "/api/auth/refresh", {
          auth: false,
          query: this.mode(),
          signal: AbortSignal.timeout(REFRESH_TIMEOUT_MS),
        });
        await this.keep(answer);
        return this.store.get();
      } catch (err) {
        // No refresh cookie (400), no CSRF proof (403), an ended session (401): signed out.
        if (err instanceof AuraError && [400, 401, 403].includes(err.status)) {
          await this.forget();
          return null;
        }
        throw err;
      }
    }).finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  /**
   * Refreshes the session if, once the lock is held, `stale` still says it
   * needs it; one refresh at a time, shared by every caller meanwhile.
   */
  private refresh(stale: (session: Session) => boolean): Promise<Session | null> {
    this.refreshing ??= this.lock(`aura.refresh:${this.http.url}`, async () => {
      const current = await this.store.get();
      if (!current || !stale(current)) return current;
      // Still ours when the answer comes: a sign-in meanwhile wins.
      const unchanged = async () => (await this.store.get())?.refreshToken === current.refreshToken;
      try {
        const tokens = await this.http.json<Tokens>("POST", "/api/auth/refresh", {
          body: { refreshToken: current.refreshToken },
          auth: false,
          // A hung refresh must not hold the lock (and every tab) forever.
          signal: AbortSignal.timeout(REFRESH_TIMEOUT_MS),
        });
        if (!(await unchanged())) return this.store.get();
        const session = sessionOf(tokens);
        await this.store.set(session);
        this.notify(session.user);
        return session;
      } catch (err) {
        // The session is over (revoked, expired, reused): signed out.
        if (err instanceof AuraError && err.status === 401) {
          if (await unchanged()) await this.forget();
          return this.store.get();
        }
        throw err;
      }
    }).finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  private async answer(body: Tokens | { mfaRequired: true; mfaToken: string }): Promise<SignInResult> {
    if ("mfaRequired" in body && body.mfaRequired) return { mfaRequired: true, mfaToken: body.mfaToken };
    return { user: await this.keep(body as Tokens) };
  }

  private async keep(tokens: Tokens): Promise<AuthUser> {
    const session = sessionOf(tokens);
    if (session.csrf) this.http.csrfToken = session.csrf;
    await this.store.set(session);
    this.notify(session.user);
    return session.user;
  }

  /** Changes the kept session, if it is still the signed-in user's whose answer this is. */
  private async update(change: (session: Session) => Session) {
    const session = await this.store.get();
    if (!session) return;
    const changed = change(session);
    if (changed.user.id !== session.user.id) return;
    await this.store.set(changed);
    this.notify(changed.user);
  }

  private async forget() {
    this.http.csrfToken = null;
    // Known to be signed out: nothing for `user()` to look for.
    this.restored = Promise.resolve(null);
    await this.store.remove();
    this.notify(null);
  }

  private notify(user: AuthUser | null, broadcast = true) {
    for (const listener of this.listeners) listener(user);
    if (broadcast) this.channel?.postMessage("changed");
  }
}

function sessionOf(tokens: Tokens): Session {
  return {
    ...(tokens.csrfToken ? { csrf: tokens.csrfToken } : {}),
    renewedAt: Date.now(),
    accessToken: tokens.accessToken ?? "",
    refreshToken: tokens.refreshToken ?? "",
    expiresAt: Date.now() + tokens.expiresIn * 1000,
    user: tokens.user,
  };
}

function base64url(bytes: Uint8Array): string {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
