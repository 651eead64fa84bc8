import type { LogLevel } from "../log";
import type { FileLayer } from "../storage";

/** Everything `goulette broker` needs; src/cli maps flags > GOULETTE_* env > config file onto it. */
export interface BrokerOptions {
  id: number; // > 0, unique in the cluster
  listen: string; // host:port to bind ("127.0.0.1:0" picks a port)
  advertise?: string; // host:port others dial; defaults to the bound listen address
  sentinels: string[]; // one or more sentinel addresses
  dataDir: string;
  fsync: string; // "always" | "interval:<ms>" | "never"
  tickMs: number; // Raft tick, default 10
  electionTicks: number; // default 10 (randomized up to 2x)
  heartbeatTicks: number; // default 1
  segmentBytes: number; // partition segment size, default 64 MiB
  maxFrameBytes: number; // default 16 MiB
  logLevel: LogLevel;
  /** A follower this many entries behind a checkpoint gets fragments instead of log entries; default 10,000. */
  compactLagEntries?: number;
  /** How often the broker looks for partitions to checkpoint (WAL trimming, repairs); default 1000 ms. */
  checkpointIntervalMs?: number;
  /** A partition with new data is checkpointed at least this often (bounds WAL replay); default 60,000 ms. */
  checkpointMaxAgeMs?: number;
  /** Applied entries kept in the Raft log in memory before they are compacted away; default 256. */
  compactEveryEntries?: number;
  /** ... or applied payload bytes, whichever comes first; default 4 MiB. */
  compactEveryBytes?: number;
  /** Background scrub: stored batches read back and verified per second, all partitions together; 0 off. Default 4 MiB. */
  scrubBytesPerS?: number;
  /** A partition's scrub pass starts again at most this long after its last one began; default 1 hour. */
  scrubPassIntervalMs?: number;
  /** Size of a WAL segment file (each is zero-filled once, then reused); default 64 MiB. */
  walSegmentBytes?: number;
  /** Where the WAL and the partition logs do their file I/O; tests inject faults (a full disk) here. */
  fs?: FileLayer;
}

export const brokerDefaults: Omit<BrokerOptions, "id" | "listen" | "sentinels" | "dataDir"> = {
  fsync: "always",
  // Elections after 150-300 ms of silence keep failover well under a second; heartbeats every 30 ms are
  // five per election timeout, so one late heartbeat (a busy event loop, a slow fsync) starts no election.
  tickMs: 10,
  electionTicks: 15,
  heartbeatTicks: 3,
  segmentBytes: 64 * 1024 * 1024,
  maxFrameBytes: 16 * 1024 * 1024,
  logLevel: "info",
};
