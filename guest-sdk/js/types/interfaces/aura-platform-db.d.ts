declare module 'aura:platform/db@0.1.0' {
  /**
   * One record by id.
   */
  export function get(collection: string, id: string): string;
  /**
   * A page of records, as the JSON object the REST list returns
   * (`items`, `perPage`, and `page`/`totalItems`/`totalPages` or
   * `nextCursor`).
   */
  export function list(collection: string, options: ListOptions): string;
  /**
   * Creates a record from a JSON object; returns the stored record.
   */
  export function create(collection: string, data: string): string;
  /**
   * Changes the fields a JSON object names (`"n+": 1` adds atomically);
   * returns the stored record.
   */
  export function update(collection: string, id: string, data: string): string;
  /**
   * Deletes a record.
   */
  export { _delete as delete };
  function _delete(collection: string, id: string): void;
  /**
   * Runs operations in one transaction: all take effect or none does.
   * Returns one JSON record per operation (`null` for deletes).
   */
  export function batch(ops: Array<Op>): Array<string>;
  /**
   * Why a call failed.
   */
  export type Error = ErrorDenied | ErrorNotFound | ErrorInvalid | ErrorConflict | ErrorInternal;
  /**
   * Not granted, or a rule denies the action.
   */
  export interface ErrorDenied {
    tag: 'denied',
    val: string,
  }
  /**
   * No such collection or record (or the caller may not see it).
   */
  export interface ErrorNotFound {
    tag: 'not-found',
    val: string,
  }
  /**
   * Invalid input: field values (the message carries the per-field
   * reasons as JSON), a filter, a sort, a body that is not a JSON object.
   */
  export interface ErrorInvalid {
    tag: 'invalid',
    val: string,
  }
  /**
   * A unique field or index already holds the value.
   */
  export interface ErrorConflict {
    tag: 'conflict',
    val: string,
  }
  /**
   * Anything else; details are in the server log.
   */
  export interface ErrorInternal {
    tag: 'internal',
    val: string,
  }
  /**
   * What `list` selects: a filter, a sort, a page or cursor, expansions.
   */
  export interface ListOptions {
    /**
     * A filter expression (`done = false && title ~ 'milk'`).
     */
    filter?: string,
    /**
     * Sort keys (`-created,title`).
     */
    sort?: string,
    /**
     * Page number from 1 (page mode).
     */
    page?: number,
    /**
     * Records per page (1-500, default 30).
     */
    perPage?: number,
    /**
     * Cursor mode: `some("")` for the first page, then the `nextCursor`
     * of the previous page.
     */
    cursor?: string,
    /**
     * Relations to expand (`author.team,tags`).
     */
    expand?: string,
  }
  /**
   * What a batch operation does.
   * # Variants
   * 
   * ## `"create"`
   * 
   * ## `"update"`
   * 
   * ## `"delete"`
   */
  export type Action = 'create' | 'update' | 'delete';
  /**
   * One operation of a batch.
   */
  export interface Op {
    action: Action,
    collection: string,
    /**
     * The record (update, delete).
     */
    id?: string,
    /**
     * The JSON object (create, update).
     */
    data?: string,
  }
  /**
   * Which operation of a batch failed, and why.
   */
  export interface BatchError {
    /**
     * Its position in the batch, from 0.
     */
    index: number,
    error: Error,
  }
}
