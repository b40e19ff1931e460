// Secrets the operator set (`aura:platform/secrets`, the `secrets` grant).
import * as raw from "aura:platform/secrets@0.1.0";
import { call } from "./errors.js";

export { PlatformError } from "./errors.js";

/** The secret's value; throws `not-found` when it is not set, `denied` when not granted. */
export function get(name: string): string {
  return call(() => raw.get(name));
}
