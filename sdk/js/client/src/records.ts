// A collection's records: list by page or iterate by cursor, read, create,
// update, delete, and subscribe to their changes.
import { segment, type Transport } from "./http.js";
import type { Realtime, Subscription, StreamEvent } from "./realtime.js";
import { LiveQuery } from "./live.js";

/** Every record has these. */
export type RecordBase = { id: string; created: string; updated: string };

export type ListOptions = {
  /** An expression in the filter language; build it with `f` when it holds values. */
  filter?: string;
  /** `-created,title`: `-` for descending. */
  sort?: string;
  page?: number;
  perPage?: number;
  /** Relations to expand, as paths (`["owner", "owner.team"]`). */
  expand?: string[];
  /** Fields to return (`["id", "title"]`). */
  fields?: string[];
  /** Do not count (faster; `totalItems` and `totalPages` are -1). */
  skipTotal?: boolean;
};

export type Page<T> = { items: T[]; page: number; perPage: number; totalItems: number; totalPages: number };

type ServerKeys = "id" | "created" | "updated" | "expand";

/**
 * What a create sets: the required fields (those that cannot be null), and
 * any others, and optionally `id`.
 */
export type Creatable<T> = { [K in keyof T as K extends ServerKeys ? never : null extends T[K] ? never : K]: T[K] } & {
  [K in keyof T as K extends ServerKeys ? never : null extends T[K] ? K : never]?: T[K];
} & { id?: string };

/** What an update says: fields, and `field+` / `field-` to add to or take from numbers and lists. */
export type Changes<T> = { [K in keyof T as K extends ServerKeys ? never : K]?: T[K] } & {
  [K in keyof T & string as K extends ServerKeys ? never : NonNullable<T[K]> extends number | readonly unknown[] ? `${K}+` | `${K}-` : never]?: NonNullable<T[K]> extends readonly (infer U)[] ? U | U[] : number;
};

/** One change of a record, as realtime delivers it. */
export type RecordEvent<T> = { action: "create" | "update" | "delete"; collection: string; record: T; id: string | null };

export class Records<T extends RecordBase = RecordBase & Record<string, unknown>> {
  private readonly base: string;

  constructor(
    private readonly http: Transport,
    private readonly realtime: Realtime,
    readonly collection: string,
  ) {
    this.base = `/api/collections/${segment(collection)}/records`;
  }

  list(options: ListOptions = {}): Promise<Page<T>> {
    return this.http.json("GET", this.base, { query: query(options) });
  }

  /** Every matching record, fetched page by page with cursors. */
  async *iterate(options: Omit<ListOptions, "page" | "skipTotal"> = {}): AsyncGenerator<T> {
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

  get(id: string, options: Pick<ListOptions, "expand" | "fields"> = {}): Promise<T> {
    return this.http.json("GET", `${this.base}/${segment(id)}`, { query: query(options) });
  }

  create(data: Creatable<T>, options: Pick<ListOptions, "expand"> = {}): Promise<T> {
    return this.http.json("POST", this.base, { body: data, query: query(options) });
  }

  /** Changes some fields; `{"count+": 1}` adds to a number, `{"tags-": ["x"]}` removes from a list. */
  update(id: string, changes: Changes<T>, options: Pick<ListOptions, "expand"> = {}): Promise<T> {
    return this.http.json("PATCH", `${this.base}/${segment(id)}`, { body: changes, query: query(options) });
  }

  delete(id: string): Promise<void> {
    return this.http.json("DELETE", `${this.base}/${segment(id)}`);
  }

  /** A list of the matching records that stays current (`close()` it). */
  live(options: Omit<ListOptions, "page" | "fields"> = {}): LiveQuery<T> {
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

function query(options: ListOptions) {
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
