// Buckets over REST: upload (with progress), download, list, delete, and
// signed URLs that need no token.
import { AuraError, errorOf } from "./errors.js";
import { segment, segments, type Transport } from "./http.js";

export type StoredObject = { key: string; size: number; etag: string; contentType: string | null; modified: string; owner: string | null };

export type UploadOptions = {
  contentType?: string;
  /** Called with bytes sent and the total, as the upload goes. */
  onProgress?: (sent: number, total: number) => void;
  signal?: AbortSignal;
};

export class Storage {
  constructor(private readonly http: Transport) {}

  bucket(name: string): Bucket {
    return new Bucket(this.http, name);
  }
}

export class Bucket {
  private readonly base: string;

  constructor(
    private readonly http: Transport,
    readonly name: string,
  ) {
    this.base = `/api/storage/${segment(name)}`;
  }

  private path(key: string): string {
    return `${this.base}/${segments(key)}`;
  }

  /** Stores `data` under `key` (creating or replacing it). */
  async upload(key: string, data: Blob | Uint8Array | ArrayBuffer | string, options: UploadOptions = {}): Promise<StoredObject> {
    const body = typeof data === "string" ? new TextEncoder().encode(data) : data instanceof ArrayBuffer ? new Uint8Array(data) : data;
    const total = body instanceof Uint8Array ? body.byteLength : body.size;
    const contentType = options.contentType ?? (typeof Blob !== "undefined" && body instanceof Blob && body.type ? body.type : "application/octet-stream");
    if (options.onProgress && typeof XMLHttpRequest !== "undefined") {
      return this.uploadWithXhr(key, body, contentType, total, options);
    }
    let sent = 0;
    // Elsewhere progress is counted as the body stream is read.
    const bytes = body instanceof Uint8Array ? body : new Uint8Array(await body.arrayBuffer());
    const stream = options.onProgress
      ? new ReadableStream<Uint8Array>({
          start(controller) {
            for (let at = 0; at < bytes.byteLength; at += 64 * 1024) controller.enqueue(bytes.subarray(at, at + 64 * 1024));
            controller.close();
          },
        }).pipeThrough(
          new TransformStream<Uint8Array, Uint8Array>({
            transform(chunk, controller) {
              controller.enqueue(chunk);
              sent += chunk.byteLength;
              options.onProgress!(sent, total);
            },
          }),
        )
      : bytes;
    const response = await this.http.send("PUT", this.path(key), {
      body: stream,
      // The length up front, so bucket rules on `size` see it.
      headers: { "content-type": contentType, "content-length": String(total) },
      signal: options.signal,
    });
    return response.json();
  }

  private async uploadWithXhr(key: string, body: Blob | Uint8Array, contentType: string, total: number, options: UploadOptions): Promise<StoredObject> {
    const token = await this.http.tokens?.accessToken();
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("PUT", this.http.href(this.path(key)));
      xhr.setRequestHeader("content-type", contentType);
      if (token) xhr.setRequestHeader("authorization", `Bearer ${token}`);
      xhr.upload.onprogress = (event) => options.onProgress!(event.loaded, event.lengthComputable ? event.total : total);
      xhr.onerror = () => reject(new AuraError(0, "network_error", "the upload failed"));
      xhr.onabort = () => reject(options.signal?.reason ?? new DOMException("the upload was aborted", "AbortError"));
      const abort = () => xhr.abort();
      xhr.onloadend = () => options.signal?.removeEventListener("abort", abort);
      xhr.onload = async () => {
        const response = new Response(xhr.responseText, { status: xhr.status, headers: { "content-type": "application/json" } });
        if (xhr.status >= 200 && xhr.status < 300) resolve(await response.json());
        else reject(await errorOf(response));
      };
      if (options.signal?.aborted) return reject(options.signal.reason);
      options.signal?.addEventListener("abort", abort, { once: true });
      xhr.send(body as XMLHttpRequestBodyInit);
    });
  }

  /** The object's bytes. */
  async download(key: string): Promise<Blob> {
    return (await this.http.send("GET", this.path(key))).blob();
  }

  list(options: { prefix?: string; delimiter?: string; after?: string; limit?: number } = {}): Promise<{ objects: StoredObject[]; prefixes: string[]; next: string | null }> {
    return this.http.json("GET", this.base, { query: options });
  }

  remove(key: string): Promise<void> {
    return this.http.json("DELETE", this.path(key));
  }

  /** A URL anyone may use for `method` on the object until it expires. */
  signedUrl(key: string, options: { method?: "GET" | "PUT"; expiresIn?: number } = {}): Promise<{ url: string; expires: number }> {
    return this.http.json("POST", "/api/signed-urls", {
      body: { bucket: this.name, key, method: options.method ?? "GET", expiresIn: options.expiresIn ?? 3600 },
    });
  }
}
