declare module 'aura:platform/storage@0.1.0' {
  /**
   * An object's metadata.
   */
  export function head(bucket: string, key: string): ObjectInfo;
  /**
   * Reads an object, or the `length` bytes from `offset` of it.
   */
  export function get(bucket: string, key: string, range: [bigint, bigint] | undefined): [ObjectInfo, Reader];
  /**
   * Starts writing an object.
   */
  export function put(bucket: string, key: string, contentType: string | undefined): Writer;
  /**
   * Deletes an object (a missing one is not an error).
   */
  export { _delete as delete };
  function _delete(bucket: string, key: string): void;
  /**
   * Objects under `prefix` after `after`, rolled up at `delimiter`; at most
   * `limit` (1 to 1000) entries.
   */
  export function list(bucket: string, prefix: string, delimiter: string | undefined, after: string | undefined, limit: number): Listing;
  /**
   * An Aura-signed URL for `method` (`GET` or `PUT`) on one object, valid
   * for `expires-in` seconds (at most 7 days).
   */
  export function presign(bucket: string, key: string, method: string, expiresIn: number): string;
  /**
   * Why a call failed.
   */
  export type Error = ErrorDenied | ErrorNotFound | ErrorInvalid | ErrorTooLarge | ErrorInternal;
  /**
   * Not granted (or not for writing).
   */
  export interface ErrorDenied {
    tag: 'denied',
    val: string,
  }
  /**
   * No such bucket or object.
   */
  export interface ErrorNotFound {
    tag: 'not-found',
    val: string,
  }
  /**
   * A key that is refused (`..`, control characters…), a bad range or
   * method.
   */
  export interface ErrorInvalid {
    tag: 'invalid',
    val: string,
  }
  /**
   * Over the bucket's size limit.
   */
  export interface ErrorTooLarge {
    tag: 'too-large',
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
   * An object's metadata.
   */
  export interface ObjectInfo {
    key: string,
    /**
     * Length in bytes.
     */
    size: bigint,
    /**
     * The ETag (hex MD5, or `…-N` for multipart uploads), unquoted.
     */
    etag: string,
    contentType?: string,
    /**
     * Last modified (RFC 3339).
     */
    modified: string,
  }
  /**
   * A page of a listing, in key order.
   */
  export interface Listing {
    objects: Array<ObjectInfo>,
    /**
     * Common prefixes, when a delimiter was given (each ends with it).
     */
    prefixes: Array<string>,
    /**
     * Pass as `after` for the next page; none on the last page.
     */
    next?: string,
  }
  
  export class Reader implements Disposable {
    /**
     * This type does not have a public constructor.
     */
    private constructor();
    /**
    * Up to `max` bytes (at most 1 MiB per call); empty at the end.
    */
    read(max: number): Uint8Array;
    [Symbol.dispose](): void;
  }
  
  export class Writer implements Disposable {
    /**
     * This type does not have a public constructor.
     */
    private constructor();
    /**
    * Appends bytes.
    */
    write(chunk: Uint8Array): void;
    /**
    * Stores the object; it replaces any object with the key.
    */
    finish(): ObjectInfo;
    [Symbol.dispose](): void;
  }
}
