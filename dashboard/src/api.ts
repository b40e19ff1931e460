// The dashboard's one way to call Aura: the public JSON API, with the admin
// token (kept in sessionStorage, never in a URL) as a bearer header and the
// chosen environment in `x-aura-env`.

const TOKEN = "aura.admin-token";
const ENV = "aura.environment";

/** An error answered by the API: its machine code and message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** The error's `details`, when the API gave some. */
    readonly details: Record<string, any> = {},
  ) {
    super(message);
  }
}

export const session = {
  get token(): string | null {
    return sessionStorage.getItem(TOKEN);
  },
  set token(value: string | null) {
    if (value === null) sessionStorage.removeItem(TOKEN);
    else sessionStorage.setItem(TOKEN, value);
  },
  get env(): string {
    return sessionStorage.getItem(ENV) ?? "default";
  },
  set env(value: string) {
    sessionStorage.setItem(ENV, value);
  },
};

function headers(extra: Record<string, string> = {}): Record<string, string> {
  const all: Record<string, string> = { ...extra };
  if (session.token) all.authorization = `Bearer ${session.token}`;
  if (session.env !== "default") all["x-aura-env"] = session.env;
  return all;
}

async function failure(response: Response): Promise<ApiError> {
  try {
    const body = await response.json();
    if (body?.error?.code) return new ApiError(response.status, body.error.code, body.error.message, body.error.details);
  } catch {
    // Not JSON: fall through.
  }
  return new ApiError(response.status, "http_" + response.status, response.statusText || "request failed");
}

/** `path` with the query parameters that are set (not undefined or ""). */
export function withQuery(path: string, params: Record<string, string | number | boolean | undefined>): string {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== "") query.set(name, String(value));
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

/** `encodeURIComponent`, short. */
export const enc = encodeURIComponent;

/** Calls `method path` with an optional JSON body; answers the JSON reply. */
export async function call<T = any>(method: string, path: string, body?: unknown): Promise<T> {
  const init: RequestInit = { method, headers: headers(body === undefined ? {} : { "content-type": "application/json" }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(path, init);
  if (!response.ok) throw await failure(response);
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

/** The body of `GET path` as a Blob (for downloads that need the token). */
export async function fetchBlob(path: string): Promise<Blob> {
  const response = await fetch(path, { headers: headers() });
  if (!response.ok) throw await failure(response);
  return response.blob();
}

/** One Server-Sent Event. */
export type StreamEvent = { id: string | null; event: string; data: string };

/**
 * Follows the event stream at `path` with the token in a header (so it
 * never sits in a URL), calling `onEvent` per event until `signal` aborts
 * or the server ends the stream.
 */
export async function followEvents(path: string, signal: AbortSignal, onEvent: (event: StreamEvent) => void): Promise<void> {
  const response = await fetch(path, { headers: headers({ accept: "text/event-stream" }), signal });
  if (!response.ok) throw await failure(response);
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event: StreamEvent = { id: null, event: "message", data: "" };
      const data: string[] = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "data") data.push(text);
        else if (field === "event") event.event = text;
        else if (field === "id") event.id = text;
      }
      if (data.length) onEvent({ ...event, data: data.join("\n") });
    }
  }
}

/** Posts a multipart form, reporting upload progress (0..1). */
export function upload<T = any>(path: string, form: FormData, onProgress: (done: number) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    for (const [name, value] of Object.entries(headers())) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    };
    xhr.onerror = () => reject(new ApiError(0, "network_error", "the server could not be reached"));
    xhr.onload = () => {
      let body: any = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        // Not JSON.
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body as T);
      else if (body?.error?.code) reject(new ApiError(xhr.status, body.error.code, body.error.message, body.error.details));
      else reject(new ApiError(xhr.status, "http_" + xhr.status, xhr.statusText || "request failed"));
    };
    xhr.send(form);
  });
}
