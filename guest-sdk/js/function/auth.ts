// Who invoked the function, and users by id (`aura:platform/auth`, the
// `auth` grant: `caller`, or `service` for lookups).
import * as raw from "aura:platform/auth@0.1.0";
import { call } from "./errors.js";

export { PlatformError } from "./errors.js";
export type User = raw.User;

/** The signed-in user the request acts for, or null. */
export function caller(): User | null {
  return raw.caller() ?? null;
}

export function lookup(id: string): User {
  return call(() => raw.lookup(id));
}
