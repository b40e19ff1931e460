// Server-Sent Events read through fetch (so the token goes in a header,
// never a URL), or through EventSource where fetch cannot stream (the token
// then goes in `?token=`); with reconnection: after a drop the stream
// resumes from the last event id, so nothing published meanwhile is lost
// while the server's buffer holds it; `resync` says when it did not.
import { AuraError, errorOf } from "./errors.js";
import type { Query, Transport } from "./http.js";

/** One event: `message` events carry `{channel, data}`. */
export type StreamEvent = { event: string; id: string | null; data: any };

export type SubscribeOptions = {
  onMessage: (event: StreamEvent) => void;
  /** Events were missed (a restart, too long away): reload what you show. */
  onResync?: () => void;
  /** The stream is (again) connected; `ready` is the server's ready event. */
  onOpen?: (ready: any) => void;
  /** A failure; the stream retries unless the server refused it (4xx). */
  onError?: (err: unknown) => void;
  /** Only record changes that match (record-change channels). */
  filter?: string;
  /** Join these channels' presence, with `state`. */
  join?: string[];
  state?: Record<string, unknown>;
};

export interface Subscription {
  close(): void;
  /** Resolves once the first connection is ready; rejects if the server refuses the stream or it is closed first. */
  readonly ready: Promise<void>;
}

/** Someone present on a channel. */
export type Member = { key: string; user: { id: string } | null; state: any; joined?: string };
type PresenceChange = { action: "sync" | "join" | "update" | "leave"; key?: string; user?: { id: string } | null; state?: unknown; members?: Member[] };

export interface Presence extends Subscription {
  update(state: Record<string, unknown>): Promise<void>;
}

const FIRST_RETRY_MS = 250;
const LAST_RETRY_MS = 10_000;

/** How streams are read: `fetch` where it can stream a body, else `eventsource`. */
export type StreamTransport = "fetch" | "eventsource";

export function defaultStreamTransport(): StreamTransport {
  const streams = typeof ReadableStream !== "undefined" && typeof Response !== "undefined" && "body" in Response.prototype;
  return !streams && typeof EventSource !== "undefined" ? "eventsource" : "fetch";
}

export class Realtime {
  constructor(
    private readonly http: Transport,
    private readonly transport: StreamTransport = defaultStreamTransport(),
  ) {}

  /** Publishes a JSON event on a channel (the channel's publish rule applies). */
  publish(channel: string, data: unknown): Promise<{ id: number; channel: string }> {
    return this.http.json("POST", `/api/realtime/channels/${encodeURIComponent(channel)}`, { body: data ?? null });
  }

  /** Who is present on `channel`. */
  presence(channel: string): Promise<{ channel: string; members: { key: string; user: { id: string } | null; state: unknown; joined: string }[] }> {
    return this.http.json("GET", `/api/realtime/presence/${encodeURIComponent(channel)}`);
  }

  /**
   * Joins `channel`'s presence with `state` while the returned handle is
   * open: `onMembers` gets everyone present (this client too) on every
   * join, change and leave; `update(state)` changes this client's state.
   */
  join(channel: string, state: Record<string, unknown>, onMembers: (members: Member[]) => void): Presence {
    let members: Member[] = [];
    let connection: string | null = null;
    // A reconnection joins with the latest state, not the first.
    const current = { ...state };
    const publish = () => onMembers([...members]);
    const subscription = this.subscribe([`presence.${channel}`], {
      join: [channel],
      state: current,
      onOpen: (ready) => {
        connection = ready?.presence?.connection ?? null;
      },
      onMessage: (event) => {
        const change = event.data?.data as PresenceChange | undefined;
        if (!change) return;
        if (change.action === "sync") members = change.members ?? [];
        else if (change.action === "leave") members = members.filter((m) => m.key !== change.key);
        else {
          const member: Member = { key: change.key!, user: change.user ?? null, state: change.state ?? {} };
          const at = members.findIndex((m) => m.key === member.key);
          members = at < 0 ? [...members, member] : members.map((m, i) => (i === at ? { ...m, ...member } : m));
        }
        publish();
      },
    });
    return {
      ready: subscription.ready,
      close: () => subscription.close(),
      update: async (next) => {
        await subscription.ready;
        if (!connection) throw new Error("not joined");
        await this.http.json("PUT", `/api/realtime/members/${encodeURIComponent(connection)}`, { body: next });
        for (const key of Object.keys(current)) delete current[key];
        Object.assign(current, next);
      },
    };
  }

  /** One stream per filter, shared by every subscription with that filter. */
  private shared = new Map<string, SharedStream>();

  /**
   * Calls `options.onMessage` for the events of `channels`. Subscriptions
   * share one connection (one per distinct `filter`): adding or closing one
   * reconnects it with the new set of channels, resuming where it was, so
   * no event is lost for the others. Presence (`join`) has its own.
   */
  subscribe(channels: string[], options: SubscribeOptions): Subscription {
    if (options.join?.length) return this.stream(channels, options);
    const key = options.filter ?? "";
    let shared = this.shared.get(key);
    if (!shared) {
      shared = new SharedStream(this, options.filter, () => this.shared.delete(key));
      this.shared.set(key, shared);
    }
    return shared.add(channels, options);
  }

  /** One connection for `channels`, reconnecting until closed. */
  stream(
    channels: string[],
    options: SubscribeOptions & { resumeFrom?: string | null; onId?: (id: string) => void; onEnd?: (err: unknown) => void },
  ): Subscription {
    const stop = new AbortController();
    let lastId: string | null = options.resumeFrom ?? null;
    const moved = (id: string) => {
      lastId = id;
      options.onId?.(id);
    };
    let ready!: () => void;
    let refused!: (err: unknown) => void;
    const readyPromise = new Promise<void>((resolve, reject) => ((ready = resolve), (refused = reject)));
    // Nobody has to wait for `ready`: an unobserved refusal is not an error.
    readyPromise.catch(() => undefined);
    const deliver = (work: () => void) => {
      if (stop.signal.aborted) return;
      try {
        work();
      } catch (err) {
        // A failing handler is the app's problem, not the stream's.
        options.onError?.(err);
      }
    };
    // `reconnect()` ends the current connection (not the subscription).
    let attempt = new AbortController();
    const restart = () => attempt.abort();
    this.streams.add(restart);
    const run = async () => {
      let delay = FIRST_RETRY_MS;
      while (!stop.signal.aborted) {
        attempt = new AbortController();
        const signal = AbortSignal.any([stop.signal, attempt.signal]);
        try {
          const query: Query = {
            channels: channels.join(","),
            filter: options.filter,
            join: options.join?.join(","),
            state: options.state ? JSON.stringify(options.state) : undefined,
          };
          for await (const event of this.open(query, lastId, signal)) {
            if (event.id !== null) moved(event.id);
            if (event.data === undefined) continue;
            if (event.event === "ready") {
              // Resume from here even if no event comes before a drop.
              if (lastId === null && typeof event.data?.lastEventId === "string") moved(event.data.lastEventId);
              delay = FIRST_RETRY_MS;
              ready();
              deliver(() => options.onOpen?.(event.data));
            } else if (event.event === "resync") deliver(() => options.onResync?.());
            else if (event.event === "error") throw Object.assign(new Error("the stream was ended by the server"), { data: event.data });
            else deliver(() => options.onMessage(event));
          }
        } catch (err) {
          if (stop.signal.aborted) return;
          if (attempt.signal.aborted) continue;
          options.onError?.(err);
          const status = (err as { status?: number }).status ?? 0;
          if (status >= 400 && status < 500 && status !== 408 && status !== 429) {
            refused(err);
            options.onEnd?.(err);
            return;
          }
        }
        if (stop.signal.aborted) return;
        if (attempt.signal.aborted) continue;
        await sleep(delay * (0.5 + Math.random() / 2), stop.signal);
        delay = Math.min(delay * 2, LAST_RETRY_MS);
      }
    };
    void run();
    return {
      close: () => {
        this.streams.delete(restart);
        stop.abort();
        refused(new Error("the subscription was closed"));
      },
      ready: readyPromise,
    };
  }

  /** Each open stream, by how to reconnect it. */
  private readonly streams = new Set<() => void>();

  /**
   * Reconnects every open stream now, resuming where each was, so that
   * they carry the current session (after a sign-in or sign-out; the
   * client does this itself when the user changes).
   */
  reconnect(): void {
    // A subscription joining meanwhile waits for the new connection's answer.
    for (const shared of this.shared.values()) shared.reopening();
    for (const restart of this.streams) restart();
  }

  /** One connection's events, from `lastId` on. */
  private async *open(query: Query, lastId: string | null, signal: AbortSignal): AsyncGenerator<StreamEvent> {
    if (this.transport === "eventsource") {
      yield* sourceEvents(this.http, { ...query, lastEventId: lastId ?? undefined }, signal);
      return;
    }
    const headers: Record<string, string> = { accept: "text/event-stream" };
    if (lastId !== null) headers["last-event-id"] = lastId;
    yield* events(await this.http.send("GET", "/api/realtime", { query, headers, signal }), signal);
  }
}

type Entry = {
  channels: string[];
  options: SubscribeOptions;
  ready: () => void;
  refuse: (err: unknown) => void;
  /** Its own stream, once the shared one was refused. */
  own?: Subscription;
  /** The connection it is on has told it so. */
  open?: boolean;
};

/** The subscriptions sharing one connection, and that connection. */
class SharedStream {
  private entries = new Set<Entry>();
  private connection: Subscription | null = null;
  private channels = "";
  private lastId: string | null = null;
  private scheduled = false;
  /** The server refused the shared stream: each subscription has its own. */
  private isolated = false;
  /** The open connection's ready event, for subscriptions that join it as it is. */
  private opened: unknown = undefined;

  constructor(
    private readonly realtime: Realtime,
    private readonly filter: string | undefined,
    private readonly onEmpty: () => void,
  ) {}

  add(channels: string[], options: SubscribeOptions): Subscription {
    let entry!: Entry;
    const ready = new Promise<void>((resolve, reject) => (entry = { channels, options, ready: resolve, refuse: reject }));
    ready.catch(() => undefined);
    this.entries.add(entry);
    if (this.isolated) this.alone(entry, null);
    else this.schedule();
    return {
      ready,
      close: () => {
        if (!this.entries.delete(entry)) return;
        entry.refuse(new Error("the subscription was closed"));
        entry.own?.close();
        if (this.isolated && !this.entries.size) {
          this.isolated = false;
          this.onEmpty();
        } else if (!this.isolated) this.schedule();
      },
    };
  }

  /** The connection is being made again: what it answered before no longer holds. */
  reopening() {
    this.opened = undefined;
  }

  /** Subscriptions made together (a page of live queries) share one reconnection. */
  private schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.reconnect();
    });
  }

  private each(work: (entry: Entry) => void) {
    for (const entry of this.entries) {
      try {
        work(entry);
      } catch (err) {
        entry.options.onError?.(err);
      }
    }
  }

  private reconnect() {
    if (this.isolated) return;
    const wanted = [...new Set([...this.entries].flatMap((e) => e.channels))].sort();
    const key = wanted.join(",");
    if (key === this.channels && this.connection) {
      // Nothing to reconnect for: subscriptions on channels already open are ready now.
      if (this.opened !== undefined) this.each((e) => !e.open && ((e.open = true), e.ready(), e.options.onOpen?.(this.opened)));
      return;
    }
    // Closed before the next one opens: it resumes from the last id seen.
    this.connection?.close();
    this.connection = null;
    this.opened = undefined;
    this.channels = key;
    if (!wanted.length) return this.onEmpty();
    const connection = this.realtime.stream(wanted, {
      filter: this.filter,
      resumeFrom: this.lastId,
      onId: (id) => (this.lastId = id),
      onOpen: (data) => {
        this.opened = data;
        this.each((e) => ((e.open = true), e.ready(), e.options.onOpen?.(data)));
      },
      // Refused for good. Alone, a subscription fails; together, one of
      // them may be what was refused, so each tries on its own, resuming
      // where the shared stream was.
      onEnd: (err) => {
        if (this.connection !== connection) return;
        this.connection = null;
        this.opened = undefined;
        this.channels = "";
        if (this.entries.size <= 1) return this.each((e) => e.refuse(err));
        this.isolated = true;
        for (const entry of this.entries) this.alone(entry, this.lastId);
      },
      onResync: () => this.each((e) => e.options.onResync?.()),
      onError: (err) => this.each((e) => e.options.onError?.(err)),
      onMessage: (event) => {
        const channel = String(event.data?.channel ?? "");
        this.each((e) => e.channels.some((p) => matches(p, channel)) && e.options.onMessage(event));
      },
    });
    this.connection = connection;
  }

  private alone(entry: Entry, resumeFrom: string | null) {
    entry.own?.close();
    entry.own = this.realtime.stream(entry.channels, { ...entry.options, filter: this.filter, resumeFrom });
    entry.own.ready.then(entry.ready, entry.refuse);
  }
}

/** Whether `channel` matches `pattern` (`*` one segment, a final `>` the rest). */
export function matches(pattern: string, channel: string): boolean {
  const want = pattern.split(".");
  const have = channel.split(".");
  for (let i = 0; i < want.length; i++) {
    if (want[i] === ">") return i === want.length - 1 && have.length > i;
    if (i >= have.length || (want[i] !== "*" && want[i] !== have[i])) return false;
  }
  return want.length === have.length;
}

/** The events of an SSE response, until it ends. */
async function* events(response: Response, signal: AbortSignal): AsyncGenerator<StreamEvent> {
  if (!response.body) throw await errorOf(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const stop = () => reader.cancel().catch(() => undefined);
  signal.addEventListener("abort", stop, { once: true });
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      // A "\r\n" may be split between chunks: keep a final "\r" for the next.
      const held = buffer.endsWith("\r") ? "\r" : "";
      buffer = buffer.slice(0, buffer.length - held.length).replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event: StreamEvent = { event: "message", id: null, data: null };
        const data: string[] = [];
        for (const line of block.split("\n")) {
          if (!line || line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "data") data.push(text);
          else if (field === "event") event.event = text;
          else if (field === "id") event.id = text;
        }
        if (!data.length) {
          // An id with no data still moves the resume point.
          if (event.id !== null) yield { ...event, data: undefined };
          continue;
        }
        const text = data.join("\n");
        try {
          event.data = JSON.parse(text);
        } catch {
          event.data = text;
        }
        yield event;
      }
      buffer += held;
    }
  } finally {
    signal.removeEventListener("abort", stop);
  }
}

/**
 * The events of one EventSource connection, until it drops. EventSource
 * does not say why a connection failed, so a failure before the first
 * event asks again with fetch to read the server's error (a refusal ends
 * the subscription; an expired token is refreshed and retried).
 */
async function* sourceEvents(http: Transport, query: Query, signal: AbortSignal): AsyncGenerator<StreamEvent> {
  const browser = http.cookies?.browser === true;
  const token = browser ? null : ((await http.tokens?.accessToken()) ?? null);
  const url = http.href("/api/realtime", { ...query, token: token ?? undefined });
  const source = new EventSource(url, { withCredentials: browser });
  const queue: (StreamEvent | Error | null)[] = [];
  let wake: (() => void) | null = null;
  const push = (item: StreamEvent | Error | null) => {
    queue.push(item);
    wake?.();
    wake = null;
  };
  const parse = (name: string, event: MessageEvent): StreamEvent => {
    let data: unknown = event.data;
    try {
      data = JSON.parse(event.data);
    } catch {
      // Text stays text.
    }
    return { event: name, id: event.lastEventId || null, data };
  };
  for (const name of ["ready", "message", "resync"]) source.addEventListener(name, (e) => push(parse(name, e as MessageEvent)));
  // The server's own `error` events carry data; the connection's do not.
  source.addEventListener("error", (e) => push(typeof (e as MessageEvent).data === "string" ? parse("error", e as MessageEvent) : new Error("the stream dropped")));
  const end = () => push(null);
  signal.addEventListener("abort", end, { once: true });
  let seen = false;
  try {
    for (;;) {
      while (!queue.length) await new Promise<void>((resolve) => (wake = resolve));
      const item = queue.shift()!;
      if (item === null) return;
      if (item instanceof Error) {
        source.close();
        throw seen ? item : await whyRefused(http, url, token, item);
      }
      seen = true;
      yield item;
    }
  } finally {
    source.close();
    signal.removeEventListener("abort", end);
  }
}

/** The server's error for a stream URL that failed to open, or `dropped` when it opens now. */
async function whyRefused(http: Transport, url: string, token: string | null, dropped: Error): Promise<unknown> {
  const probe = new AbortController();
  try {
    const response = await http.fetch(url, { signal: probe.signal, credentials: http.cookies?.browser ? "include" : "same-origin" });
    if (response.ok) return dropped;
    const err = await errorOf(response);
    // An expired token: retry (the next connection takes a fresh one).
    if (err instanceof AuraError && err.code === "invalid_token" && http.tokens && (await http.tokens.refreshAfterRefusal(token))) return dropped;
    return err;
  } catch {
    return dropped;
  } finally {
    probe.abort();
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
