// `goulette sentinel`: opens the durable map, listens, and runs the periodic work (health, notifications,
// failover) until stopped.

import { mkdirSync } from "node:fs";
import { createLogger } from "../log";
import { ErrorCode } from "../proto/goulette_pb";
import { WireError, serve, type BodyCase } from "../wire";
import { SentinelPeers } from "./sentinel-peers";
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
  "alterTopicConfig",
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
  const several = opts.peers.length > 1;
  const peers = several ? new SentinelPeers(opts.id, opts.peers, opts.maxFrameBytes, log) : undefined;
  mkdirSync(opts.dataDir, { recursive: true });
  const store = await RaftMapStore.open({
    dir: opts.dataDir,
    fsync: parseFsyncPolicy(opts.fsync),
    id: several ? opts.id : 1,
    voters: peers?.voters ?? [1],
    electionTicks: MAP_ELECTION_TICKS,
    heartbeatTicks: 1,
    send: peers ? (messages) => peers.send(messages) : undefined,
    log,
  });
  if (!several && !(await store.waitLeader(5_000))) {
    await store.close();
    throw new Error("the sentinel could not take the lead of its own map");
  }

  const { hostname, port } = parseListen(opts.listen);
  let address = opts.advertise ?? (several ? opts.peers[opts.id - 1]! : "");
  // Registry, health, reports, notifications and failover run on the map's leader only, built afresh on
  // every election won: a new leader learns the brokers from their next beats, as after a restart.
  let sentinel: Sentinel | undefined;
  const tickMs = Math.max(10, Math.min(100, Math.floor(opts.keepAliveMs / 2)));
  const followLeadership = (): Sentinel | undefined => {
    const leading = store.isLeader();
    if (leading && !sentinel) {
      sentinel = new Sentinel({
        opts,
        store,
        address: () => address,
        log,
        version: SENTINEL_VERSION,
        tickMs,
        sentinels: () =>
          (several ? opts.peers : [address]).map((a, i) => ({ id: several ? i + 1 : opts.id, address: a, leader: several ? store.leader === i + 1 : true })),
      });
      log.info("sentinel serving as map leader", { address, term: store.node.term });
    } else if (!leading && sentinel) {
      sentinel.stop();
      sentinel = undefined;
      log.info("sentinel no longer the map leader", { leader: store.leader });
    }
    return sentinel;
  };
  followLeadership();
  const server = serve({
    hostname,
    port,
    maxFrameBytes: opts.maxFrameBytes,
    accepts: several ? [...SENTINEL_ACCEPTS, "raft"] : SENTINEL_ACCEPTS,
    handle: (body) => {
      if (body.case === "raft") {
        for (const m of peers?.receive(body.value) ?? []) store.step(m);
        return undefined;
      }
      const s = followLeadership();
      if (!s) {
        const leader = store.leader;
        const leaderAddress = leader > 0 ? (peers?.address(leader) ?? "") : "";
        throw new WireError(
          ErrorCode.NOT_SENTINEL_LEADER,
          leader > 0 ? `sentinel ${leader} (${leaderAddress}) leads the cluster map` : "no sentinel leader elected yet",
          { leaderId: leader, leaderAddress },
        );
      }
      return s.handle(body);
    },
  });
  if (!address) address = `${hostname}:${server.port}`;
  const timer = setInterval(() => followLeadership()?.tick(), tickMs);
  const raftTimer = setInterval(() => store.tick(), MAP_TICK_MS);
  log.info("sentinel listening", { address, dataDir: opts.dataDir, clusterId: store.map.clusterId, epoch: store.map.version, peers: opts.peers });

  let stopping: Promise<void> | undefined;
  return {
    address,
    stop() {
      stopping ??= (async () => {
        clearInterval(timer);
        clearInterval(raftTimer);
        sentinel?.stop();
        server.stop();
        peers?.close();
        await store.close();
        log.info("sentinel stopped", { address });
      })();
      return stopping;
    },
  };
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
