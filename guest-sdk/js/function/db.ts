// Records of collections (`aura:platform/db`, the `collections` grant), as
// parsed JSON: the same records, pages and rules as the REST API.
import * as raw from "aura:platform/db@0.1.0";
import { call } from "./errors.js";

export { PlatformError } from "./errors.js";

export type Record = { id: string; created: string; updated: string; [field: string]: unknown };
export type Page<T> = { items: T[]; perPage: number; page?: number; totalItems?: number; totalPages?: number; nextCursor?: string | null };
export type ListOptions = { filter?: string; sort?: string; page?: number; perPage?: number; cursor?: string; expand?: string };
export type Operation =
  | { action: "create"; collection: string; data: object }
  | { action: "update"; collection: string; id: string; data: object }
  | { action: "delete"; collection: string; id: string };

export function get<T = Record>(collection: string, id: string): T {
  return JSON.parse(call(() => raw.get(collection, id)));
}

export function list<T = Record>(collection: string, options: ListOptions = {}): Page<T> {
  return JSON.parse(call(() => raw.list(collection, options)));
}

export function create<T = Record>(collection: string, data: object): T {
  return JSON.parse(call(() => raw.create(collection, JSON.stringify(data))));
}

/** Changes the fields `changes` names (`{"n+": 1}` adds, `{"tags-": "x"}` removes). */
export function update<T = Record>(collection: string, id: string, changes: object): T {
  return JSON.parse(call(() => raw.update(collection, id, JSON.stringify(changes))));
}

function remove(collection: string, id: string): void {
  call(() => raw.delete(collection, id));
}
export { remove as delete };

/** Runs the operations in one transaction; answers each record (`null` for a delete). */
export function batch<T = Record>(operations: Operation[]): (T | null)[] {
  const ops = operations.map((op) => ({
    action: op.action,
    collection: op.collection,
    id: "id" in op ? op.id : undefined,
    data: "data" in op ? JSON.stringify(op.data) : undefined,
  }));
  return call(() => raw.batch(ops)).map((text) => JSON.parse(text));
}
