// The cluster as the page shows it: servers, sessions by server, filters and
// each session's activity. Pure functions of protobuf messages, so that
// node --test checks them without a browser (test/model.test.ts).
//
// The page fills it from a ClusterSource (source.ts): today ListServers and
// ListSessions; a WatchSessions source feeds the same Cluster through
// applySnapshot and the per-event functions below.

import { ServerHealth, type Server } from "./gen/wsh/v1/hub_pb";
import { SessionState, type Session } from "./gen/wsh/v1/types_pb";

/** A session's activity as shown: what a person glancing at the list wants. */
export type Activity = "busy" | "idle" | "ready" | "exited";

/** Output or input this recent counts as busy: the servers' own settle time
 * is 50 ms, a person reading the list cannot tell shorter apart. */
export const BUSY_WITHIN_MS = 1000;

export interface Cluster {
  servers: Server[];
  sessions: Session[];
  /** Registered servers whose sessions could not be listed (not HEALTHY). */
  missing: Server[];
  /** Whether each session (by sessionKey) has settled, where the source
   * knows it from the server (WatchSessions' busy and idle events). */
  quiet?: ReadonlyMap<string, boolean>;
}

export interface Filters {
  /** Empty: every tag. */
  tag: string;
  /** Empty: every server. */
  server: string;
}

export function emptyCluster(): Cluster {
  return { servers: [], sessions: [], missing: [] };
}

/** `quiet`: whether the server says the session has settled; without it,
 * recent activity in the listing counts as busy. */
export function activity(session: Session, quiet?: boolean): Activity {
  if (session.state === SessionState.EXITED) return "exited";
  if (quiet === false || (quiet === undefined && session.lastActivityMs < BUSY_WITHIN_MS)) {
    return "busy";
  }
  return session.ready ? "ready" : "idle";
}

export function healthName(health: ServerHealth): string {
  switch (health) {
    case ServerHealth.HEALTHY:
      return "healthy";
    case ServerHealth.CONNECTING:
      return "connecting";
    case ServerHealth.UNAVAILABLE:
      return "unavailable";
    case ServerHealth.REJECTED:
      return "rejected";
    default:
      return "unknown";
  }
}

export function latencyText(server: Server): string {
  if (server.health !== ServerHealth.HEALTHY) return "";
  if (server.address === "local") return "local";
  return `${server.latencyMs < 10 ? server.latencyMs.toFixed(1) : Math.round(server.latencyMs)} ms`;
}

export function exitText(session: Session): string {
  const code = session.exitCode;
  if (code === undefined) return "";
  return code < 0 ? `killed by signal ${-code}` : `exit ${code}`;
}

/** Every tag of the cluster, sorted, once each. */
export function allTags(sessions: readonly Session[]): string[] {
  return [...new Set(sessions.flatMap((s) => s.tags))].sort();
}

export function filterSessions(sessions: readonly Session[], filters: Filters): Session[] {
  return sessions.filter(
    (s) =>
      (!filters.tag || s.tags.includes(filters.tag)) &&
      (!filters.server || s.server === filters.server),
  );
}

/** Sessions grouped by their server, in the order of `servers` (the hub
 * first), then any server the list names that `servers` does not. */
export function groupByServer(
  servers: readonly Server[],
  sessions: readonly Session[],
): Map<string, Session[]> {
  const groups = new Map<string, Session[]>();
  for (const server of servers) if (server.hostname) groups.set(server.hostname, []);
  for (const session of sessions) {
    const group = groups.get(session.server);
    if (group) group.push(session);
    else groups.set(session.server, [session]);
  }
  for (const group of groups.values()) group.sort((a, b) => a.name.localeCompare(b.name));
  return groups;
}

/** Tags typed by a person: split on commas and blanks, empties dropped. */
export function parseTags(text: string): string[] {
  return [...new Set(text.split(/[\s,]+/).filter((t) => t.length > 0))];
}

/** What to add and remove to turn `before` into `after`. */
export function tagChanges(
  before: readonly string[],
  after: readonly string[],
): { addTags: string[]; removeTags: string[] } {
  return {
    addTags: after.filter((t) => !before.includes(t)),
    removeTags: before.filter((t) => !after.includes(t)),
  };
}

/** A stable key for a session across the cluster. */
export function sessionKey(s: { server: string; name: string }): string {
  return `${s.server}/${s.name}`;
}
