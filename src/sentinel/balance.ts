// Brings partitions back to their ring placement: the first RF distinct brokers clockwise from the
// partition's key, among brokers that have been healthy for `balanceAfterMs` and report no storage fault.
//
// Placement follows the ring only when a topic is created; afterwards failover puts a replacement wherever a
// broker is free. So a broker back from an outage would hold nothing until new topics came, and one added
// to the cluster would get only new topics. The balancer moves such partitions, one replica at a time (the
// failover's plan: learner, catch up, promote, hand over leadership if the leaving replica leads, remove),
// so a cluster of N+1 brokers holds about 1/(N+1) of the replicas on the new one, as the ring promises.
//
// Moves copy data, so they wait: for every broker involved to have been healthy a while (a broker that
// flaps moves nothing), for no replacement to be under way anywhere (failures first), and for every
// replica of the partition to be healthy. At most MAX_CONCURRENT_MOVES run at once.

import type { ClusterMap, PartitionRecord } from "./cluster-map";
import type { Failover } from "./failover";
import type { ReportTable } from "./reports";
import { partitionKey, type BrokerId, type HashRing } from "./ring";

export const MAX_CONCURRENT_MOVES = 4;

export interface BalanceDeps {
  map: () => ClusterMap;
  ring: HashRing;
  reports: ReportTable;
  failover: Failover;
  /** How long the broker has been healthy without a break (undefined: not healthy now). */
  healthyForMs: (b: BrokerId) => number | undefined;
  /** Healthy and without a storage fault: may be given replicas. */
  placeable: (b: BrokerId) => boolean;
  isAlive: (b: BrokerId) => boolean;
  balanceAfterMs: number;
}

export class Balancer {
  constructor(private readonly deps: BalanceDeps) {}

  /** Starts moves for partitions placed off the ring, up to MAX_CONCURRENT_MOVES in all. */
  run(): void {
    const { deps } = this;
    if (deps.balanceAfterMs <= 0 || deps.failover.replacing() > 0) return;
    let room = MAX_CONCURRENT_MOVES - deps.failover.moving();
    if (room <= 0) return;
    const settled = (b: BrokerId) => deps.placeable(b) && (deps.healthyForMs(b) ?? -1) >= deps.balanceAfterMs;
    const map = deps.map();
    for (const topic of map.allTopics()) {
      for (const p of topic.partitions) {
        if (room <= 0) return;
        if (deps.failover.hasPlan(topic.name, p.partition) || p.replicas.length !== topic.replicationFactor) continue;
        const move = this.nextMove(topic.name, p, settled);
        if (move && deps.failover.startMove(topic.name, p, move.from, move.to)) room--;
      }
    }
  }

  /** The one replica to move next for this partition, or undefined when it is where the ring wants it. */
  private nextMove(topic: string, p: PartitionRecord, settled: (b: BrokerId) => boolean): { from: BrokerId; to: BrokerId } | undefined {
    // Every replica healthy for a while (a replica in trouble is the failover's, not ours), and learners
    // only when one is a move this sentinel began before it restarted (resumed below).
    if (!p.replicas.every(settled)) return undefined;
    const learner = p.learners.find(settled);
    if (p.learners.length > (learner === undefined ? 0 : 1)) return undefined;
    const key = partitionKey(topic, p.partition);
    const wanted = this.deps.ring.replicas(key, p.replicas.length, settled);
    if (wanted.length < p.replicas.length) return undefined;
    const extra = p.replicas.filter((b) => !wanted.includes(b));
    const to = learner ?? wanted.find((b) => !p.replicas.includes(b));
    if (to === undefined) return undefined;
    // The replica to leave: one the ring does not want, a follower rather than the leader (no hand-over).
    // A learner left from an interrupted move with nothing to replace goes in place of the replica the ring
    // puts last, and a later move settles the rest.
    const leader = this.deps.reports.leaderOf(topic, p.partition, p.group, p.replicas, this.deps.isAlive)?.leaderId;
    const candidates = extra.length > 0 ? extra : [...this.deps.ring.walk(key, (b) => p.replicas.includes(b))].slice(-1);
    const from = candidates.find((b) => b !== leader) ?? candidates[0];
    if (from === undefined || from === to) return undefined;
    return { from, to };
  }
}
