// What the sentinel needs from the durable cluster map. The implementation is raft-map-store.ts: commands
// go through the Raft core and the storage WAL, with one voter (the embedded default) or several sentinels.

import type { ClusterMap, MapCommand, MapResult } from "./cluster-map";

export interface MapStore {
  readonly map: ClusterMap;
  /** Applies a command once it is committed (durable here, and on a majority when several sentinels). */
  propose(command: MapCommand): Promise<MapResult>;
  close(): Promise<void>;
}
