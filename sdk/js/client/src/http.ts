// Requests to one Aura server and environment: JSON in and out, the
// session's token in the Authorization header, errors as AuraError, and
// one refresh-and-retry when the server says the token is no longer valid.
import { AuraError, errorOf } from "./errors.js";

export type Query = Record<string, string | number | boolean | undefined | null>;

/**
 * One path segment, encoded. `.` and `..` (also as `%2e`) are refused: URL
 * parsing would fold them and send the request to another endpoint.
 */
export function segment(text: string): string {
  if (/^(\.|%2e){1,2}$/i.test(text) || text === "") {
    throw new AuraError(400, "invalid_name", `\`${text}\` cannot be a name or a path segment`);
  }
  return encodeURIComponent(text);
}

/** A multi-segment path (`a/b/c.txt`), each segment checked as by `segment`. */
export function segments(path: string): string {
  return path.split("/").map(segment).join("/");
}

export type RequestOptions = {
  query?: Query;
  /** A JSON body (anything but a BodyInit), or a raw body. */
  body?: unknown;
  headers?: Record<string, string>;
  /** Send the session's token (default true). */
  auth?: boolean;
  signal?: AbortSignal;
};

export interface TokenSource {
  /** The access token to send, refreshed first if it is about to expire. */
  accessToken(): Promise<string | null>;
  /** Refreshes after the server refused `token` (null: the session cookie); true if a new one is there. */
  refreshAfterRefusal(token: string | null): Promise<boolean>;
}

/**
 * Where a server-side client keeps Aura's cookies (the app's own cookies):
 * what goes into each request, and what each answer sets.
 */
export interface CookieJar {
  /** The `Cookie` header for a request to `path`, a path of Aura's API (`/api/auth/refresh`, no prefix). */
  header(path: string): string | undefined;
  /** The CSRF token the state-changing requests repeat. */
  csrf(): string | undefined;
  /** No access cookie, but a refresh cookie: refresh before asking. */
  needsRefresh(): boolean;
  /** Takes the `Set-Cookie` headers of an answer. */
  receive(response: Response): void;
  /** The browser keeps the cookies itself (`credentials: "include"`). */
  readonly browser?: boolean;
}

/**
 * A browser's own cookies for Aura's cookie sessions: only the CSRF cookie
 * is readable, and only where the page shares the API's host and path (the
 * sign-in answer's `csrfToken`, kept by the client, covers the rest).
 */
export function browserCookies(env = "default"): CookieJar {
  const csrf = env === "default" ? "aura_csrf" : `aura_csrf.${env}`;
  return {
    browser: true,
    header: () => undefined,
    csrf: () => globalThis.document?.cookie.split(/;\s*/).find((c) => c.startsWith(`${csrf}=`))?.slice(csrf.length + 1),
    needsRefresh: () => false,
    receive: () => undefined,
  };
}

export class Transport {
  tokens: TokenSource | null = null;
  cookies: CookieJar | null = null;
  /** The CSRF token a cookie-session sign-in answered with. */
  csrfToken: string | null = null;

  constructor(
    readonly url: string,
    readonly env: string | undefined,
    readonly fetch: typeof globalThis.fetch,
  ) {}

  /** The absolute URL of `path` in this client's environment. */
  href(path: string, query: Query = {}): string {
    const prefix = this.env && this.env !== "default" ? `/env/${segment(this.env)}` : "";
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) {
      if (value !== undefined && value !== null) params.set(name, String(value));
    }
    const text = params.toString();
    return `${this.url}${prefix}${path}${text ? `?${text}` : ""}`;
  }

  /** Sends a request; answers the Response when it is a success. */
  async send(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
    const authenticated = options.auth !== false;
    if (authenticated && this.cookies?.needsRefresh()) await this.tokens?.refreshAfterRefusal(null);
    const token = authenticated ? await this.tokens?.accessToken() ?? null : null;
    let response = await this.once(method, path, options, token);
    // A function's own 401 is its answer (a retry would run it again), and a
    // streamed body cannot be sent twice.
    const retriable = !path.startsWith("/fn/") && !(typeof ReadableStream !== "undefined" && options.body instanceof ReadableStream);
    const refusable = retriable && (token !== null || (authenticated && this.cookies !== null));
    if (response.status === 401 && refusable && this.tokens) {
      const peek = await response.clone().json().catch(() => null);
      if (peek?.error?.code === "invalid_token" && (await this.tokens.refreshAfterRefusal(token))) {
        response = await this.once(method, path, options, await this.tokens.accessToken());
      }
    }
    if (!response.ok) throw await errorOf(response);
    return response;
  }

  /** Sends a request and answers its JSON body (undefined for 204). */
  async json<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const response = await this.send(method, path, options);
    if (response.status === 204) return undefined as T;
    return (await response.json()) as T;
  }

  private async once(method: string, path: string, options: RequestOptions, token: string | null): Promise<Response> {
    const headers: Record<string, string> = { ...options.headers };
    if (token) headers.authorization = `Bearer ${token}`;
    if (this.cookies) {
      const cookie = this.cookies.header(path);
      if (cookie) headers.cookie = cookie;
      const csrf = this.csrfToken ?? this.cookies.csrf();
      if (csrf && !["GET", "HEAD", "OPTIONS"].includes(method)) headers["x-csrf-token"] = csrf;
    }
    let body: BodyInit | undefined;
    if (options.body !== undefined) {
      if (isRawBody(options.body)) body = options.body;
      else {
        body = JSON.stringify(options.body);
        headers["content-type"] ??= "application/json";
      }
    }
    let response: Response;
    try {
      const init: RequestInit & { duplex?: "half" } = { method, headers, body, signal: options.signal };
      if (this.cookies?.browser) init.credentials = "include";
      // A streamed request body is sent as it is read.
      if (typeof ReadableStream !== "undefined" && body instanceof ReadableStream) init.duplex = "half";
      response = await this.fetch(this.href(path, options.query), init);
    } catch (err) {
      if ((err as Error)?.name === "AbortError") throw err;
      throw new AuraError(0, "network_error", `cannot reach ${this.url}: ${(err as Error)?.message ?? err}`);
    }
    this.cookies?.receive(response);
    return response;
  }
}

function isRawBody(body: unknown): body is BodyInit {
  return (
    typeof body === "string" ||
    body instanceof Uint8Array ||
    body instanceof ArrayBuffer ||
    (typeof Blob !== "undefined" && body instanceof Blob) ||
    (typeof FormData !== "undefined" && body instanceof FormData) ||
    (typeof ReadableStream !== "undefined" && body instanceof ReadableStream) ||
    body instanceof URLSearchParams
  );
}
