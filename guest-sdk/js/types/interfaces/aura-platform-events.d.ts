declare module 'aura:platform/events@0.1.0' {
  /**
   * Publishes `data`, a JSON document, on `channel`; returns the event id.
   */
  export function publish(channel: string, data: string): bigint;
  /**
   * Why a publish was refused.
   */
  export type Error = ErrorDenied | ErrorInvalid;
  /**
   * The channel is not covered by the function's `events` grant.
   */
  export interface ErrorDenied {
    tag: 'denied',
    val: string,
  }
  /**
   * The channel name or the data is not valid (data must be JSON).
   */
  export interface ErrorInvalid {
    tag: 'invalid',
    val: string,
  }
}
