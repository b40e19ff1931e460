// A collection's records: list by page or iterate by cursor, read, create,
// update, delete, and subscribe to their changes.
import { segment, type Transport } from "./http.js";
import type { Realtime, Subscription, StreamEvent } from "./realtime.js";
import { LiveQuery } from "./live.js";

/** Every record has these. */
export type RecordBase = { id: string; created: string; updated: string };

type AnyRecord = RecordBase & Record<string, unknown>;

/** The relations of `T` that `expand` can name: those of its `expand` type (any name for untyped records). */
type Relations<T> = "expand" extends keyof T ? (unknown extends T["expand" & keyof T] ? string : keyof NonNullable<T["expand" & keyof T]> & string) : never;
/** A path to expand: a relation, or a relation's relations (`owner.team`). */
export type ExpandPath<T> = string extends Relations<T> ? string : Relations<T> | `${Relations<T>}.${string}`;

export type ListOptions<T = AnyRecord> = {
  /** An expression in the filter language; build it with `f` when it holds values. */
  filter?: string;
  /** `-created,title`: `-` for descending. */
  sort?: string;
  page?: number;
  perPage?: number;
  /** Relations to expand, as paths (`["owner", "owner.team"]`). */
  expand?: ExpandPath<T>[];
  /** Fields to return (`["id", "title"]`). */
  fields?: string[];
  /** Do not count (faster; `totalItems` and `totalPages` are -1). */
  skipTotal?: boolean;
};

export type Page<T> = { items: T[]; page: number; perPage: number; totalItems: number; totalPages: number };

type ServerKeys = "id" | "created" | "updated" | "expand";

declare const fileKey: unique symbol;
/** The key of an object in a file field's bucket: what `aura types` writes for file fields. */
export type FileKey = string & { readonly [fileKey]?: "file" };

/** A field's value as written: file fields also take files (`F`), which go up with the record. */
type Input<V, F> = V extends readonly (infer U)[] ? (typeof fileKey extends keyof U ? readonly (U | F)[] : V) : typeof fileKey extends keyof V ? V | F : V;

/**
 * What a create sets: the required fields (those that cannot be null), and
 * any others, and optionally `id`. File fields take a `Blob` (a `File`):
 * the record and its files go in one request.
 */
export type Creatable<T, F = Blob> = { [K in keyof T as K extends ServerKeys ? never : null extends T[K] ? never : K]: Input<T[K], F> } & {
  [K in keyof T as K extends ServerKeys ? never : null extends T[K] ? K : never]?: Input<T[K], F>;
} & { id?: string };

/** What an update says: fields, and `field+` / `field-` to add to or take from numbers and lists. */
export type Changes<T, F = Blob> = { [K in keyof T as K extends ServerKeys ? never : K]?: Input<T[K], F> } & {
  [K in keyof T & string as K extends ServerKeys ? never : NonNullable<T[K]> extends number | readonly unknown[] ? `${K}+` | `${K}-` : never]?: NonNullable<T[K]> extends readonly (infer U)[] ? Input<U, F> | readonly Input<U, F>[] : number;
};

/** One change of a record, as realtime delivers it. */
export type RecordEvent<T> = { action: "create" | "update" | "delete"; collection: string; record: T; id: string | null };

export class Records<T extends RecordBase = AnyRecord> {
  private readonly base: string;

  constructor(
    private readonly http: Transport,
    private readonly realtime: Realtime,
    readonly collection: string,
  ) {
    this.base = `/api/collections/${segment(collection)}/records`;
  }

  list(options: ListOptions<T> = {}): Promise<Page<T>> {
    return this.http.json("GET", this.base, { query: query(options) });
  }

  /** Every matching record, fetched page by page with cursors. */
  async *iterate(options: Omit<ListOptions<T>, "page" | "skipTotal"> = {}): AsyncGenerator<T> {
    let cursor = "";
    for (;;) {
      const page = await this.http.json<{ items: T[]; nextCursor: string | null }>("GET", this.base, {
        query: { ...query(options), cursor, perPage: options.perPage ?? 200 },
      });
      yield* page.items;
      if (!page.nextCursor) return;
      cursor = page.nextCursor;
    }
  }

  get(id: string, options: Pick<ListOptions<T>, "expand" | "fields"> = {}): Promise<T> {
    return this.http.json("GET", `${this.base}/${segment(id)}`, { query: query(options) });
  }

  /** Creates a record; with files in file fields, it and they go up in one request. */
  create(data: Creatable<T>, options: Pick<ListOptions<T>, "expand"> = {}): Promise<T> {
    return this.http.json("POST", this.base, { body: formOf(data) ?? data, query: query(options) });
  }

  /** Changes some fields; `{"count+": 1}` adds to a number, `{"tags-": ["x"]}` removes from a list, `{"photos+": file}` adds a file. */
  update(id: string, changes: Changes<T>, options: Pick<ListOptions<T>, "expand"> = {}): Promise<T> {
    return this.http.json("PATCH", `${this.base}/${segment(id)}`, { body: formOf(changes) ?? changes, query: query(options) });
  }

  delete(id: string): Promise<void> {
    return this.http.json("DELETE", `${this.base}/${segment(id)}`);
  }

  /** A list of the matching records that stays current (`close()` it). */
  live(options: Omit<ListOptions<T>, "page" | "fields"> = {}): LiveQuery<T> {
    return new LiveQuery(this, options);
  }

  /**
   * Calls `handler` for each change of the collection's records (or of
   * record `id`) that `filter` matches and the caller may view. The stream
   * resumes where it stopped after a drop; `onResync` runs when events
   * were missed (reload your state). Answers the subscription (`close()`).
   */
  subscribe(
    options: { filter?: string; id?: string; onResync?: () => void; onError?: (err: unknown) => void },
    handler: (event: RecordEvent<T>) => void,
  ): Subscription {
    const channel = `collections.${this.collection}.${options.id ?? "*"}`;
    return this.realtime.subscribe([channel], {
      filter: options.filter,
      onResync: options.onResync,
      onError: options.onError,
      onMessage: (event: StreamEvent) => {
        const data = event.data as { data: Omit<RecordEvent<T>, "id"> };
        handler({ ...data.data, id: event.id });
      },
    });
  }
}

function query(options: ListOptions<any>) {
  return {
    filter: options.filter || undefined,
    sort: options.sort || undefined,
    page: options.page,
    perPage: options.perPage,
    expand: options.expand?.length ? options.expand.join(",") : undefined,
    fields: options.fields?.length ? options.fields.join(",") : undefined,
    skipTotal: options.skipTotal ? 1 : undefined,
  };
}

const isFile = (value: unknown): value is Blob => typeof Blob !== "undefined" && value instanceof Blob;

/**
 * A body with files as `multipart/form-data` (null without files): a file
 * per part, lists of files a part per item, other values as text (JSON for
 * all but strings), which the server reads by each field's type.
 */
function formOf(data: object): FormData | null {
  const entries = Object.entries(data).filter(([, value]) => value !== undefined);
  if (!entries.some(([, value]) => isFile(value) || (Array.isArray(value) && value.some(isFile)))) return null;
  const form = new FormData();
  const append = (name: string, value: unknown) => {
    if (isFile(value)) form.append(name, value, (value as File).name || "file");
    else form.append(name, value === null ? "" : typeof value === "string" ? value : JSON.stringify(value));
  };
  for (const [name, value] of entries) {
    if (Array.isArray(value) && value.some(isFile)) value.forEach((item) => append(name, item));
    else append(name, value);
  }
  return form;
}
