// Objects in buckets (`aura:platform/storage`, the `buckets` grant): the
// same store as the S3 API and `/api/storage`, with sizes as numbers and
// bodies as bytes or text.
import * as raw from "aura:platform/storage@0.1.0";
import { call } from "./errors.js";

export { PlatformError } from "./errors.js";

export type ObjectInfo = { key: string; size: number; etag: string; contentType?: string; modified: string };
export type Listing = { objects: ObjectInfo[]; prefixes: string[]; next?: string };
export type ListOptions = { prefix?: string; delimiter?: string; after?: string; limit?: number };
/** Bytes from `offset`, `length` of them. */
export type Range = { offset: number; length: number };
export type Body = Uint8Array | string | Iterable<Uint8Array>;

const CHUNK = 1024 * 1024;

function info(raw: { key: string; size: bigint; etag: string; contentType?: string; modified: string }): ObjectInfo {
  return { ...raw, size: Number(raw.size) };
}

/** An object's metadata; throws `not-found` when there is none. */
export function head(bucket: string, key: string): ObjectInfo {
  return info(call(() => raw.head(bucket, key)));
}

/** The object's bytes as they are read, a chunk (up to 1 MiB) at a time. */
export function* chunks(bucket: string, key: string, range?: Range): Generator<Uint8Array, ObjectInfo> {
  const span: [bigint, bigint] | undefined = range && [BigInt(range.offset), BigInt(range.length)];
  const [meta, reader] = call(() => raw.get(bucket, key, span));
  try {
    for (;;) {
      const chunk = call(() => reader.read(CHUNK));
      if (chunk.length === 0) return info(meta);
      yield chunk;
    }
  } finally {
    reader[Symbol.dispose]();
  }
}

/** The object (or the range of it): its metadata and its bytes. */
export function get(bucket: string, key: string, range?: Range): { info: ObjectInfo; bytes: Uint8Array } {
  const parts: Uint8Array[] = [];
  const reading = chunks(bucket, key, range);
  let step = reading.next();
  while (!step.done) {
    parts.push(step.value);
    step = reading.next();
  }
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    bytes.set(part, at);
    at += part.length;
  }
  return { info: step.value, bytes };
}

/** The object's bytes decoded as UTF-8. */
export function getText(bucket: string, key: string): string {
  return new TextDecoder().decode(get(bucket, key).bytes);
}

/** Stores `body` (bytes, text, or chunks as they come) as the object `key`, replacing any. */
export function put(bucket: string, key: string, body: Body, contentType?: string): ObjectInfo {
  const writer = call(() => raw.put(bucket, key, contentType ?? (typeof body === "string" ? "text/plain; charset=utf-8" : undefined)));
  try {
    const parts = typeof body === "string" ? [new TextEncoder().encode(body)] : body instanceof Uint8Array ? [body] : body;
    for (const part of parts) {
      for (let at = 0; at < part.length; at += CHUNK) {
        const piece = part.subarray(at, at + CHUNK);
        call(() => writer.write(piece));
      }
    }
    return info(call(() => writer.finish()));
  } finally {
    writer[Symbol.dispose]();
  }
}

function remove(bucket: string, key: string): void {
  call(() => raw.delete(bucket, key));
}
export { remove as delete };

/** A page of objects in key order (pass `next` as `after` for the following one). */
export function list(bucket: string, options: ListOptions = {}): Listing {
  const page = call(() => raw.list(bucket, options.prefix ?? "", options.delimiter, options.after, options.limit ?? 1000));
  return { objects: page.objects.map(info), prefixes: page.prefixes, next: page.next };
}

/** An Aura-signed URL for one object, for `GET` (default) or `PUT`, valid for `expiresIn` seconds. */
export function presign(bucket: string, key: string, method: "GET" | "PUT" = "GET", expiresIn = 3600): string {
  return call(() => raw.presign(bucket, key, method, expiresIn));
}
