// Where the cluster view gets its data: WatchSource (watch.ts) today.

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
