// The cluster from WatchSessions: a snapshot, then one event per change
// (created, renamed, retagged, exited, killed, busy, idle, servers' health),
// no polling for any of them. WatchState applies the events (pure,
// unit-tested in test/watch.test.ts); WatchSource runs the stream and reopens
// it after a failure. Two things the stream does not carry are read every
// LATENCY_INTERVAL_MS and merged, never adding or removing anything: the
// servers' heartbeat latency (ListServers) and each session's foreground
// command and readiness (ListSessions), which change without an event.

import type { Hub } from "./api";
import {
  type Server,
  ServerHealth,
  WatchEvent,
  type WatchSessionsResponse,
} from "./gen/wsh/v1/hub_pb";
import type { Session } from "./gen/wsh/v1/types_pb";
import { type Cluster, sessionKey } from "./model";
import type { ClusterSource } from "./source";

/** How often the servers' heartbeat latency is read while watching. */
export const LATENCY_INTERVAL_MS = 2000;
/** Wait before reopening a failed stream. */
export const REOPEN_MS = 1000;

export class WatchState {
  private servers = new Map<string, Server>();
  private sessions = new Map<string, Session>();
  private quiet = new Map<string, boolean>();
  private synced = false;
  private inSnapshot = false;

  /** Applies one event; true when the cluster changed and is complete
   * (after the snapshot's SYNCED). */
  apply(event: WatchSessionsResponse): boolean {
    const key = sessionKey({ server: event.server, name: event.session });
    const info = event.sessionInfo;
    switch (event.event) {
      case WatchEvent.SERVER:
      case WatchEvent.SESSION:
        if (!this.inSnapshot) {
          // A snapshot starts (the first, or a resync): it replaces all.
          this.servers.clear();
          this.sessions.clear();
          this.quiet.clear();
          this.inSnapshot = true;
          this.synced = false;
        }
        if (event.event === WatchEvent.SERVER && event.serverInfo) {
          this.servers.set(event.serverInfo.hostname, event.serverInfo);
        } else if (info) {
          this.sessions.set(key, info);
          this.quiet.set(key, event.quiet);
        }
        return false;
      case WatchEvent.SYNCED:
        this.inSnapshot = false;
        this.synced = true;
        return true;
      case WatchEvent.SESSION_CREATED:
      case WatchEvent.SESSION_TAGS_CHANGED:
      case WatchEvent.SESSION_RESIZED:
      case WatchEvent.SESSION_EXITED:
        if (info) this.sessions.set(key, info);
        break;
      case WatchEvent.SESSION_RENAMED: {
        const before = sessionKey({ server: event.server, name: event.previousName });
        const quiet = this.quiet.get(before);
        this.sessions.delete(before);
        this.quiet.delete(before);
        if (info) this.sessions.set(key, info);
        if (quiet !== undefined) this.quiet.set(key, quiet);
        break;
      }
      case WatchEvent.SESSION_KILLED:
      case WatchEvent.SESSION_EXPIRED:
      case WatchEvent.SESSION_REMOVED:
        this.sessions.delete(key);
        this.quiet.delete(key);
        break;
      case WatchEvent.SESSION_BUSY:
      case WatchEvent.SESSION_IDLE:
        this.quiet.set(key, event.event === WatchEvent.SESSION_IDLE);
        break;
      case WatchEvent.SERVER_ADDED:
      case WatchEvent.SERVER_HEALTH_CHANGED:
        if (event.serverInfo) {
          const known = this.servers.get(event.serverInfo.hostname || event.server);
          this.servers.set(event.serverInfo.hostname || event.server, {
            ...event.serverInfo,
            sessionCount: event.serverInfo.sessionCount || known?.sessionCount || 0,
          });
        }
        break;
      case WatchEvent.SERVER_REMOVED:
        this.servers.delete(event.server);
        break;
      default:
        return false;
    }
    return this.synced;
  }

  /** Foreground command and readiness from a ListSessions answer, for the
   * sessions the stream knows (membership is the stream's alone). */
  details(sessions: readonly Session[]): boolean {
    let changed = false;
    for (const session of sessions) {
      const key = sessionKey(session);
      const known = this.sessions.get(key);
      if (known && (known.foreground !== session.foreground || known.ready !== session.ready)) {
        this.sessions.set(key, { ...known, foreground: session.foreground, ready: session.ready });
        changed = true;
      }
    }
    return changed && this.synced;
  }

  /** Heartbeat latency from a ListServers answer. */
  latency(servers: readonly Server[]): boolean {
    let changed = false;
    for (const server of servers) {
      const known = this.servers.get(server.hostname);
      if (known && known.latencyMs !== server.latencyMs) {
        this.servers.set(server.hostname, { ...known, latencyMs: server.latencyMs });
        changed = true;
      }
    }
    return changed && this.synced;
  }

  cluster(): Cluster {
    const servers = [...this.servers.values()];
    const healthy = new Set(
      servers.filter((s) => s.health === ServerHealth.HEALTHY).map((s) => s.hostname),
    );
    return {
      servers,
      // Sessions of a server that is not HEALTHY are kept as last known by
      // the stream; the list shows them once it is back.
      sessions: [...this.sessions.values()].filter((s) => healthy.has(s.server)),
      missing: servers.filter((s) => s.health !== ServerHealth.HEALTHY),
      quiet: new Map(this.quiet),
    };
  }
}

export class WatchSource implements ClusterSource {
  private wake: (() => void) | null = null;

  constructor(private readonly hub: Hub) {}

  /** Every change comes by itself on the stream; this only cuts short the
   * wait before reopening a failed one (a token just typed). */
  refresh(): void {
    this.wake?.();
  }

  async run(
    update: (cluster: Cluster) => void,
    failed: (err: unknown) => void,
    signal: AbortSignal,
  ): Promise<void> {
    while (!signal.aborted) {
      const state = new WatchState();
      const stream = new AbortController();
      const stop = () => stream.abort();
      signal.addEventListener("abort", stop, { once: true });
      const latency = this.followLatency(state, update, stream.signal);
      try {
        for await (const event of this.hub.watchSessions({}, { signal: stream.signal })) {
          if (state.apply(event)) update(state.cluster());
        }
      } catch (err) {
        if (signal.aborted) return;
        failed(err);
      } finally {
        stream.abort();
        signal.removeEventListener("abort", stop);
        await latency;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, REOPEN_MS);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = null;
    }
  }

  private async followLatency(
    state: WatchState,
    update: (cluster: Cluster) => void,
    signal: AbortSignal,
  ): Promise<void> {
    while (!signal.aborted) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, LATENCY_INTERVAL_MS);
        signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
      });
      if (signal.aborted) return;
      try {
        const [{ servers }, { sessions }] = await Promise.all([
          this.hub.listServers({}, { signal }),
          this.hub.listSessions({}, { signal }),
        ]);
        const latency = state.latency(servers);
        if (state.details(sessions) || latency) update(state.cluster());
      } catch {
        // The stream's own failure is what the page reports.
      }
    }
  }
}
