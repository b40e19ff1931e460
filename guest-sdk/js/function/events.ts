// Realtime events (`aura:platform/events`, the `events` grant).
import * as raw from "aura:platform/events@0.1.0";
import { call } from "./errors.js";

export { PlatformError } from "./errors.js";

/** Publishes `data` as JSON on `channel`; answers the event's id. */
export function publish(channel: string, data: unknown): bigint {
  return call(() => raw.publish(channel, JSON.stringify(data ?? null)));
}
