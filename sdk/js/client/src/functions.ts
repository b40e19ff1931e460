// Calling functions: an answer as JSON or text, a streamed answer chunk by
// chunk as the function writes it, or an asynchronous run to poll.
import { AuraError } from "./errors.js";
import { segment, segments, type Transport } from "./http.js";

export type InvokeOptions = {
  method?: string;
  /** After `/fn/NAME` (`/reports/2026?x=1`). */
  path?: string;
  /** A JSON value, or a raw body (string, bytes, Blob, FormData, stream). */
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
};

export type AsyncInvocation = {
  id: string;
  function: string;
  status: "queued" | "running" | "succeeded" | "failed";
  attempts: number;
  error: string | null;
  response: { status: number; headers: Record<string, string>; body?: string; body_base64?: string; truncated: boolean } | null;
};

export class Functions {
  constructor(private readonly http: Transport) {}

  /** The function's answer as a Response (any status below 400). */
  fetch(name: string, options: InvokeOptions = {}): Promise<Response> {
    const method = options.method ?? (options.body === undefined ? "GET" : "POST");
    return this.http.send(method, target(name, options.path), {
      body: options.body,
      headers: options.headers,
      signal: options.signal,
    });
  }

  /** The function's answer: parsed JSON when it says so, else text. */
  async invoke<T = unknown>(name: string, options: InvokeOptions = {}): Promise<T> {
    const response = await this.fetch(name, options);
    const type = response.headers.get("content-type") ?? "";
    return (type.includes("json") ? await response.json() : await response.text()) as T;
  }

  /** The answer's body as it arrives: bytes, or text with `{ text: true }`. */
  stream(name: string, options: InvokeOptions & { text: true }): AsyncIterable<string>;
  stream(name: string, options?: InvokeOptions & { text?: false }): AsyncIterable<Uint8Array>;
  async *stream(name: string, options: InvokeOptions & { text?: boolean } = {}): AsyncIterable<string | Uint8Array> {
    const response = await this.fetch(name, options);
    if (!response.body) return;
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let finished = false;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        yield options.text ? decoder.decode(value, { stream: true }) : value;
      }
      finished = true;
      const rest = options.text ? decoder.decode() : "";
      if (rest) yield rest;
    } finally {
      // Leaving the loop early stops the download too.
      if (!finished) await reader.cancel().catch(() => undefined);
      reader.releaseLock();
    }
  }

  /**
   * Runs the function in the background (`Prefer: respond-async`); the
   * handle's `result()` polls until it is done.
   */
  async invokeAsync(name: string, options: InvokeOptions = {}) {
    const response = await this.fetch(name, { ...options, headers: { ...options.headers, prefer: "respond-async" } });
    const id = response.headers.get("x-aura-invocation-id");
    if (response.status !== 202 || !id) {
      throw new AuraError(response.status, "not_async", "the server ran the invocation at once instead of queueing it");
    }
    const http = this.http;
    const status = (signal?: AbortSignal) =>
      http.json<AsyncInvocation>("GET", `/api/invocations/${segment(id)}`, { auth: false, signal });
    return {
      id,
      status,
      /** Polls every `pollMs` until the run is over; `signal` stops waiting. */
      async result(pollMs = 250, signal?: AbortSignal): Promise<AsyncInvocation> {
        for (;;) {
          signal?.throwIfAborted();
          const state = await status(signal);
          if (state.status === "succeeded" || state.status === "failed") return state;
          await new Promise<void>((resolve) => {
            const timer = setTimeout(done, pollMs);
            function done() {
              clearTimeout(timer);
              signal?.removeEventListener("abort", done);
              resolve();
            }
            signal?.addEventListener("abort", done, { once: true });
          });
        }
      },
    };
  }
}

/** `/fn/NAME` and `path` after it (`/a/b?x=1`), no segment of which may be `.` or `..`. */
function target(name: string, path = ""): string {
  const at = path.search(/[?#]/);
  const [route, query] = at < 0 ? [path, ""] : [path.slice(0, at), path.slice(at)];
  const parts = route.split("/").filter(Boolean);
  return `/fn/${segment(name)}${parts.length ? "/" + segments(parts.map(decodeURIComponent).join("/")) : ""}${query}`;
}
