// React bindings: <AuraProvider client={aura}> and hooks for the signed-in
// user, live lists of records and presence. Each hook subscribes while its
// component is mounted and renders what the client knows now.
import { createContext, useCallback, useContext, useEffect, useMemo, useRef, useState, useSyncExternalStore, type ReactNode } from "react";
import type { AnySchema, AuraClient, AuthUser, ListOptions, LiveQuery, LiveState, Member, Presence, RecordBase } from "@aura/client";

const AuraContext = createContext<{ client: AuraClient<any>; initialUser: AuthUser | null } | null>(null);

/**
 * Makes `client` available to the hooks below. `initialUser` (from the
 * server, when rendering there) shows the signed-in state on the first
 * render instead of a flash of signed-out.
 */
export function AuraProvider(props: { client: AuraClient<any>; initialUser?: AuthUser | null; children?: ReactNode }) {
  const value = useMemo(() => ({ client: props.client, initialUser: props.initialUser ?? null }), [props.client, props.initialUser]);
  return <AuraContext.Provider value={value}>{props.children}</AuraContext.Provider>;
}

/** The client of the nearest AuraProvider. */
export function useAura<S extends { [K in keyof S]: RecordBase } = AnySchema>(): AuraClient<S> {
  const context = useContext(AuraContext);
  if (!context) throw new Error("useAura needs an <AuraProvider client={…}> above it");
  return context.client as AuraClient<S>;
}

/** The signed-in user (null when signed out), kept current. */
export function useUser(): { user: AuthUser | null; loading: boolean } {
  const context = useContext(AuraContext);
  if (!context) throw new Error("useUser needs an <AuraProvider client={…}> above it");
  const { client, initialUser } = context;
  const [state, setState] = useState({ user: initialUser, loading: initialUser === null });
  useEffect(() => {
    let current = true;
    // A change that arrives first is newer than what the store held.
    let changed = false;
    client.auth.user().then((user) => {
      if (current && !changed && (user || !initialUser)) setState({ user, loading: false });
    });
    const stop = client.auth.onAuthChange((user) => {
      changed = true;
      setState({ user, loading: false });
    });
    return () => {
      current = false;
      stop();
    };
  }, [client, initialUser]);
  return state;
}

const LOADING: LiveState<any> = { items: [], loading: true, error: null };

/**
 * The records of `collection` that `options` select, live: the list
 * changes when anyone creates, updates or deletes a matching record.
 */
export function useRecords<T extends RecordBase = RecordBase & Record<string, unknown>>(
  collection: string,
  options: Omit<ListOptions<T>, "page" | "fields"> = {},
): LiveState<T> & { refetch: () => Promise<void> } {
  const client = useAura();
  const key = JSON.stringify([collection, options]);
  const query = useRef<LiveQuery<T> | null>(null);
  // The query and the options it was made for: after they change, the old
  // query's items are not shown for the new options.
  const [live, setLive] = useState<{ key: string; query: LiveQuery<T> } | null>(null);
  useEffect(() => {
    const made = client.records(collection).live(options) as unknown as LiveQuery<T>;
    query.current = made;
    setLive({ key, query: made });
    return () => made.close();
    // `key` stands for collection and options.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [client, key]);
  const current = live?.key === key ? live.query : null;
  const subscribe = useCallback((notify: () => void) => (current ? current.onChange(notify) : () => {}), [current]);
  const state = useSyncExternalStore(
    subscribe,
    () => (current ? current.current : LOADING),
    () => LOADING,
  );
  return { ...state, refetch: () => query.current?.refetch() ?? Promise.resolve() };
}

/**
 * Joins `channel`'s presence with `state` while mounted: everyone present,
 * and `update` to change this client's state.
 */
export function usePresence(channel: string, state: Record<string, unknown> = {}): { members: Member[]; update: (state: Record<string, unknown>) => Promise<void> } {
  const client = useAura();
  const [members, setMembers] = useState<Member[]>([]);
  const presence = useRef<Presence | null>(null);
  const wanted = JSON.stringify(state);
  const joinedWith = useRef(wanted);
  useEffect(() => {
    const joined = client.realtime.join(channel, JSON.parse(joinedWith.current), setMembers);
    presence.current = joined;
    return () => joined.close();
  }, [client, channel]);
  // A new state is an update of this member, not a leave and a join.
  useEffect(() => {
    if (wanted === joinedWith.current) return;
    joinedWith.current = wanted;
    presence.current?.update(JSON.parse(wanted)).catch(() => undefined);
  }, [wanted]);
  return { members, update: (next) => presence.current?.update(next) ?? Promise.reject(new Error("not joined")) };
}
