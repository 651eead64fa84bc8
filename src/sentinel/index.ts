// `goulette sentinel`: opens the durable map, listens, and runs the periodic work (health, notifications,
// failover) until stopped.

import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createLogger } from "../log";
import { serve, type BodyCase } from "../wire";
import { writeFileAtomic } from "../storage/atomic-file";
import { realFileLayer } from "../storage/file-layer";
import { parseFsyncPolicy } from "../storage/fsync-policy";
import { RaftMapStore } from "./raft-map-store";
import { sentinelDefaults, type SentinelOptions } from "./options";
import { Sentinel } from "./server";

export { sentinelDefaults, type SentinelOptions } from "./options";

export const SENTINEL_VERSION = "0.1.0";
const MAP_TICK_MS = 50; // Raft tick of the map group: elections among sentinels after 0.5-1 s of silence
const MAP_ELECTION_TICKS = 10;

/** The requests a sentinel serves; anything else is refused at the wire layer. */
export const SENTINEL_ACCEPTS: readonly BodyCase[] = [
  "registerBroker",
  "unregisterBroker",
  "keepAlive",
  "createTopic",
  "deleteTopic",
  "listTopics",
  "describeTopic",
  "metadata",
  "clusterStatus",
  "getTopicLeader",
  "initProducer",
  "joinGroup",
  "groupHeartbeat",
  "leaveGroup",
];

export interface RunningSentinel {
  address: string;
  stop(): Promise<void>;
}

export async function startSentinel(input: SentinelOptions): Promise<RunningSentinel> {
  const opts: SentinelOptions = { ...sentinelDefaults, ...input };
  const log = createLogger(opts.logLevel, { role: "sentinel", id: opts.id });
  if (opts.peers.length > 1) {
    throw new Error("several sentinels (--peers) are not supported yet: run one sentinel");
  }
  mkdirSync(opts.dataDir, { recursive: true });
  const clusterId = loadClusterId(opts.dataDir);
  const store = await RaftMapStore.open({
    dir: opts.dataDir,
    fsync: parseFsyncPolicy(opts.fsync),
    id: opts.id,
    voters: [opts.id],
    electionTicks: MAP_ELECTION_TICKS,
    heartbeatTicks: 1,
    log,
  });
  if (!(await store.waitLeader(5_000))) {
    await store.close();
    throw new Error("the sentinel could not take the lead of its own map");
  }

  const { hostname, port } = parseListen(opts.listen);
  let address = opts.advertise ?? "";
  const sentinel = new Sentinel({ opts, store, address: () => address, log, clusterId, version: SENTINEL_VERSION });
  const server = serve({
    hostname,
    port,
    maxFrameBytes: opts.maxFrameBytes,
    accepts: SENTINEL_ACCEPTS,
    handle: (body) => sentinel.handle(body),
  });
  if (!opts.advertise) address = `${hostname}:${server.port}`;
  const tickMs = Math.max(10, Math.min(100, Math.floor(opts.keepAliveMs / 2)));
  const timer = setInterval(() => sentinel.tick(), tickMs);
  const raftTimer = setInterval(() => store.tick(), MAP_TICK_MS);
  log.info("sentinel listening", { address, dataDir: opts.dataDir, clusterId, epoch: store.map.version });

  let stopping: Promise<void> | undefined;
  return {
    address,
    stop() {
      stopping ??= (async () => {
        clearInterval(timer);
        clearInterval(raftTimer);
        sentinel.stop();
        server.stop();
        await store.close();
        log.info("sentinel stopped", { address });
      })();
      return stopping;
    },
  };
}

/** A cluster id made once per data directory and kept, so brokers can tell sentinels of different clusters apart. */
function loadClusterId(dataDir: string): string {
  const path = join(dataDir, "cluster-id");
  if (existsSync(path)) {
    const id = readFileSync(path, "utf8").trim();
    if (id.length > 0) return id;
  }
  const id = crypto.randomUUID();
  writeFileAtomic(realFileLayer, path, new TextEncoder().encode(id + "\n"));
  return id;
}

/** "host:port" to bind; port 0 lets the OS pick (the wire client's parser rightly refuses 0 to dial). */
function parseListen(listen: string): { hostname: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(listen);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !m[1] || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`bad listen address "${listen}": expected host:port`);
  }
  return { hostname: m[1], port };
}
