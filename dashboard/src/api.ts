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
    if (body?.error?.code) return new ApiError(response.status, body.error.code, body.error.message);
  } catch {
    // Not JSON: fall through.
  }
  return new ApiError(response.status, "http_" + response.status, response.statusText || "request failed");
}

/** Calls `method path` with an optional JSON body; answers the JSON reply. */
export async function call<T = any>(method: string, path: string, body?: unknown): Promise<T> {
  const init: RequestInit = { method, headers: headers(body === undefined ? {} : { "content-type": "application/json" }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(path, init);
  if (!response.ok) throw await failure(response);
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
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
      else if (body?.error?.code) reject(new ApiError(xhr.status, body.error.code, body.error.message));
      else reject(new ApiError(xhr.status, "http_" + xhr.status, xhr.statusText || "request failed"));
    };
    xhr.send(form);
  });
}
