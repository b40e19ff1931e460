// The one error type of the SDK: what the server answered, or why it could
// not be reached.

export class AuraError extends Error {
  override readonly name = "AuraError";
  constructor(
    /** HTTP status, or 0 when the server could not be reached. */
    readonly status: number,
    /** Aura's machine-readable code (`invalid_filter`, `token_reused`…). */
    readonly code: string,
    message: string,
    /** The error's `details` (field errors, positions…). */
    readonly details: Record<string, unknown> = {},
    /** Seconds to wait before trying again (429, 503). */
    readonly retryAfter: number | null = null,
  ) {
    super(message);
  }
}

/** The AuraError an unsuccessful response stands for. */
export async function errorOf(response: Response): Promise<AuraError> {
  const retry = response.headers.get("retry-after");
  const retryAfter = retry !== null && /^\d+$/.test(retry) ? Number(retry) : null;
  let body: any = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON.
  }
  const error = body?.error;
  if (error && typeof error.code === "string") {
    return new AuraError(response.status, error.code, String(error.message ?? ""), error.details ?? {}, retryAfter);
  }
  return new AuraError(response.status, `http_${response.status}`, response.statusText || "request failed", {}, retryAfter);
}
