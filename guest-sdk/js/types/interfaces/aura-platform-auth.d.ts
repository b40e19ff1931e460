declare module 'aura:platform/auth@0.1.0' {
  /**
   * The signed-in user who invoked the function (bearer access token), or
   * none: nobody signed in, the admin token, a schedule. A queued run
   * (`Prefer: respond-async`) has the caller of the request that queued it.
   */
  export function caller(): User | undefined;
  /**
   * A user by id (needs `auth = "service"`).
   */
  export function lookup(id: string): User;
  /**
   * A user as rules see them (`@request.auth.*`).
   */
  export interface User {
    id: string,
    email: string,
    roles: Array<string>,
    verified: boolean,
  }
  /**
   * Why a call failed.
   */
  export type Error = ErrorDenied | ErrorNotFound | ErrorInternal;
  /**
   * The function's grant does not allow it.
   */
  export interface ErrorDenied {
    tag: 'denied',
    val: string,
  }
  /**
   * No such user.
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
