declare module 'aura:platform/secrets@0.1.0' {
  /**
   * The value of secret `name`.
   */
  export function get(name: string): string;
  /**
   * Why a read was refused.
   */
  export type Error = ErrorDenied | ErrorNotFound | ErrorInternal;
  /**
   * The function's `secrets` grant does not name this secret.
   */
  export interface ErrorDenied {
    tag: 'denied',
    val: string,
  }
  /**
   * No secret has this name.
   */
  export interface ErrorNotFound {
    tag: 'not-found',
    val: string,
  }
  /**
   * Anything else; details are in the server log.
   */
  export interface ErrorInternal {
    tag: 'internal',
    val: string,
  }
}
