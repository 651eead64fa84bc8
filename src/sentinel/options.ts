import type { LogLevel } from "../log";

/** Everything `goulette sentinel` needs; src/cli maps flags > GOULETTE_* env > config file onto it. */
export interface SentinelOptions {
  listen: string; // host:port to bind
  advertise?: string;
  dataDir: string;
  peers: string[]; // empty or all sentinels (including this one) when several replicate the map
  id: number; // 1-based position in peers when peers are given; 1 alone
  fsync: string; // "always" | "interval:<ms>" | "never"
  keepAliveMs: number; // interval brokers are told to beat at, default 200
  suspiciousAfterMs: number; // silence before healthy -> suspicious, default 3 beats
  downAfterMs: number; // silence before suspicious -> down (failover starts), default 1500
  virtualNodes: number; // per broker on the hash ring, default 128
  /**
   * Once every broker a partition's ring placement names has been healthy this long, a partition placed
   * elsewhere (replaced during an outage, created before a broker joined) moves there, one replica at a
   * time: default 30,000 ms; 0 never moves a live replica.
   */
  balanceAfterMs: number;
  maxFrameBytes: number;
  logLevel: LogLevel;
}

export const sentinelDefaults: Omit<SentinelOptions, "listen" | "dataDir"> = {
  peers: [],
  id: 1,
  fsync: "always",
  keepAliveMs: 200,
  suspiciousAfterMs: 600,
  downAfterMs: 1500,
  virtualNodes: 128,
  balanceAfterMs: 30_000,
  maxFrameBytes: 16 * 1024 * 1024,
  logLevel: "info",
};
