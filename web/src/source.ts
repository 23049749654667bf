// Where the cluster view gets its data. ListSource asks the hub for servers
// and sessions once a second (every RPC it needs is on the hub today); a
// WatchSessions source (a snapshot, then one event per change) plugs in here
// with the same interface once the hub serves it.

import type { Hub } from "./api";
import type { Cluster } from "./model";

export interface ClusterSource {
  /** Calls `update` with the whole cluster each time it changes, and
   * `failed` on an error, until `signal` aborts. */
  run(
    update: (cluster: Cluster) => void,
    failed: (err: unknown) => void,
    signal: AbortSignal,
  ): Promise<void>;
  /** Asks for an update now (after the page changed something). */
  refresh(): void;
}

export const LIST_INTERVAL_MS = 1000;

export class ListSource implements ClusterSource {
  private wake: (() => void) | null = null;

  constructor(private readonly hub: Hub) {}

  refresh(): void {
    this.wake?.();
  }

  async run(
    update: (cluster: Cluster) => void,
    failed: (err: unknown) => void,
    signal: AbortSignal,
  ): Promise<void> {
    while (!signal.aborted) {
      try {
        const [servers, sessions] = await Promise.all([
          this.hub.listServers({}, { signal }),
          this.hub.listSessions({}, { signal }),
        ]);
        update({
          servers: servers.servers,
          sessions: sessions.sessions,
          missing: sessions.missingServers,
        });
      } catch (err) {
        if (signal.aborted) return;
        failed(err);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, LIST_INTERVAL_MS);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
        signal.addEventListener("abort", () => this.wake?.(), { once: true });
      });
      this.wake = null;
    }
  }
}
