// The error of every platform call: the WIT error's case as `code`, its
// message, and the status REST answers for it. Platform calls throw their
// WIT errors as `{payload: {tag, val}}`; `call` turns them into this.

export class PlatformError extends Error {
  override readonly name = "PlatformError";
  constructor(
    /** `denied`, `not-found`, `invalid`, `conflict`, `too-large`, `internal`. */
    readonly code: string,
    message: string,
  ) {
    super(message);
  }

  /** The HTTP status that goes with it (403, 404, 400, 409, 413, 500). */
  get status(): number {
    return STATUS[this.code] ?? 500;
  }
}

const STATUS: Record<string, number> = { denied: 403, "not-found": 404, invalid: 400, conflict: 409, "too-large": 413, internal: 500 };

/** Runs a platform call, throwing its error as a PlatformError. */
export function call<T>(work: () => T): T {
  try {
    return work();
  } catch (err) {
    const payload = (err as { payload?: { tag?: string; val?: unknown } }).payload;
    if (payload?.tag) throw new PlatformError(payload.tag, typeof payload.val === "string" ? payload.val : JSON.stringify(payload.val));
    throw err;
  }
}
