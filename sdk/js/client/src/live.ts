// Live queries: a list of records that stays current. The first page comes
// from the server; then each record change is applied in sort order. A
// change to a record the list could hold is checked against the filter by
// the server (one small request), so the list never guesses the rule
// language; after missed events (`resync`) the list is fetched again.
import { literal } from "./filter.js";
import type { ListOptions, RecordBase, Records } from "./records.js";
import type { Subscription } from "./realtime.js";

export type LiveState<T> = { items: T[]; loading: boolean; error: unknown };

/** Membership checks in flight or just answered, shared by the lists that ask the same. */
const checks = new Map<string, Promise<unknown>>();

export class LiveQuery<T extends RecordBase> {
  private state: LiveState<T> = { items: [], loading: true, error: null };
  private listeners = new Set<(state: LiveState<T>) => void>();
  private subscription: Subscription | null = null;
  private closed = false;
  /** Serializes fetches and changes, so they apply in the order they came. */
  private queue: Promise<void> = Promise.resolve();
  /** The server may hold more matching records than the window shows. */
  private hasMore = false;
  private loaded!: () => void;
  private failed!: (err: unknown) => void;
  /** Settles once the first page is in (and changes from then on are followed). */
  readonly ready: Promise<void> = new Promise((resolve, reject) => ((this.loaded = resolve), (this.failed = reject)));

  constructor(
    private readonly records: Records<T>,
    private readonly options: Omit<ListOptions<T>, "page" | "fields"> = {},
  ) {
    this.subscription = records.subscribe(
      { onResync: () => this.enqueue(() => this.fetch()) },
      (event) => this.enqueue(() => this.apply(event.action, event.record)),
    );
    this.ready.catch(() => undefined);
    this.subscription.ready.then(
      () => this.enqueue(() => this.fetch()).then(() => (this.state.error ? this.failed(this.state.error) : this.loaded())),
      (error) => {
        this.set({ ...this.state, loading: false, error });
        this.failed(error);
      },
    );
  }

  /** The current state. */
  get current(): LiveState<T> {
    return this.state;
  }

  /** Calls `listener` on every change; answers how to stop. */
  onChange(listener: (state: LiveState<T>) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Fetches the list again. */
  refetch(): Promise<void> {
    return this.enqueue(() => this.fetch());
  }

  close() {
    this.closed = true;
    this.subscription?.close();
    this.listeners.clear();
  }

  private enqueue(work: () => Promise<void>): Promise<void> {
    this.queue = this.queue.then(work).catch((error) => this.set({ ...this.state, loading: false, error }));
    return this.queue;
  }

  private set(state: LiveState<T>) {
    if (this.closed) return;
    this.state = state;
    for (const listener of this.listeners) listener(state);
  }

  private get limit(): number {
    return this.options.perPage ?? 30;
  }

  private async fetch() {
    const page = await this.records.list({ ...this.options, page: 1, skipTotal: true });
    this.hasMore = page.items.length >= this.limit;
    this.set({ items: page.items, loading: false, error: null });
  }

  /**
   * Applies one change to the window of the first `perPage` records. Where
   * records behind a full window could move in, or the changed one could
   * belong behind them, the window is fetched again.
   */
  private async apply(action: "create" | "update" | "delete", changed: T) {
    const before = this.state.items;
    const rest = before.filter((item) => item.id !== changed.id);
    const left = rest.length < before.length;
    const record = action === "delete" ? null : await this.fresh(changed);
    if (!record) {
      if (left && this.hasMore) return this.fetch();
      if (left) this.set({ ...this.state, items: rest });
      return;
    }
    let items = insertSorted(rest, record, this.options.sort);
    if (this.hasMore && items[items.length - 1] === record) return this.fetch();
    if (items.length > this.limit) {
      items = items.slice(0, this.limit);
      this.hasMore = true;
    }
    this.set({ ...this.state, items });
  }

  /**
   * The record as the list shows it (expanded), or null if the filter no
   * longer matches it. Lists with the same filter ask once per change.
   */
  private fresh(record: T): Promise<T | null> {
    const { filter, expand } = this.options;
    if (!filter && !expand?.length) return Promise.resolve(record);
    const key = JSON.stringify([this.records.collection, filter, expand, record.id, record.updated]);
    let asked = checks.get(key) as Promise<T | null> | undefined;
    if (!asked) {
      const id = literal(record.id);
      asked = this.records
        .list({ filter: filter ? `(${filter}) && id = ${id}` : `id = ${id}`, expand, perPage: 1, skipTotal: true })
        .then((found) => found.items[0] ?? null)
        .finally(() => setTimeout(() => checks.delete(key), 1000));
      checks.set(key, asked);
    }
    return asked;
  }
}

/** `items` with `record` where `sort` (`-created,title`) puts it; ties by id. */
export function insertSorted<T extends RecordBase>(items: T[], record: T, sort = ""): T[] {
  const keys = sort.split(",").map((k) => k.trim()).filter(Boolean).map((k) => (k.startsWith("-") ? { field: k.slice(1), sign: -1 } : { field: k.replace(/^\+/, ""), sign: 1 }));
  const compare = (a: T, b: T) => {
    for (const { field, sign } of keys) {
      const x = (a as Record<string, unknown>)[field] as any;
      const y = (b as Record<string, unknown>)[field] as any;
      if (x === y) continue;
      if (x === null || x === undefined) return -sign;
      if (y === null || y === undefined) return sign;
      return (x < y ? -1 : 1) * sign;
    }
    return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
  };
  const out = [...items];
  const at = out.findIndex((item) => compare(record, item) < 0);
  out.splice(at < 0 ? out.length : at, 0, record);
  return out;
}
