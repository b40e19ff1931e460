// Record writes in one transaction: `aura.batch()`, add creates, updates
// and deletes, then `send()`. All take effect or none does; a failure is
// the failing operation's error, with `details.index`.
import type { Transport } from "./http.js";
import type { Changes, Creatable, RecordBase } from "./records.js";

/** A batch's operations on one collection; each answers the batch. */
export type BatchRecords<S extends { [K in keyof S]: RecordBase }, K extends keyof S> = {
  create(data: Creatable<S[K], never>): Batch<S>;
  update(id: string, changes: Changes<S[K], never>): Batch<S>;
  delete(id: string): Batch<S>;
};

type Operation = { action: "create" | "update" | "delete"; collection: string; id?: string; data?: unknown };

export class Batch<S extends { [K in keyof S]: RecordBase }> {
  private readonly operations: Operation[] = [];

  constructor(private readonly http: Transport) {}

  /** Operations on one collection's records (JSON only: upload files with `records(c).create`). */
  records<K extends keyof S & string>(collection: K): BatchRecords<S, K> {
    const add = (operation: Operation): Batch<S> => (this.operations.push(operation), this);
    return {
      create: (data: Creatable<S[K], never>) => add({ action: "create", collection, data }),
      update: (id: string, changes: Changes<S[K], never>) => add({ action: "update", collection, id, data: changes }),
      delete: (id: string) => add({ action: "delete", collection, id }),
    };
  }

  /** How many operations it holds. */
  get size(): number {
    return this.operations.length;
  }

  /** Runs the operations; answers each one's record (`null` for a delete), in order. */
  async send(): Promise<(S[keyof S] | null)[]> {
    const { results } = await this.http.json<{ results: (S[keyof S] | null)[] }>("POST", "/api/batch", {
      body: { operations: this.operations },
    });
    return results;
  }
}
