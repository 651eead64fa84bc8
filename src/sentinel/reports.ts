// What brokers last told us about their partitions (KeepAlive, SetTopicRole / ChangeReplicas / probe
// answers). Raft on the brokers decides who leads; this table is the sentinel's view of those decisions,
// and GetTopicLeader, metadata and failover all read leaders from here, never from the placement hint.

import type { PartitionStatus } from "../proto/goulette_pb";
import { Role } from "../proto/goulette_pb";
import type { BrokerId } from "./ring";

export const MAX_REPORTED_PARTITIONS_PER_BROKER = 100_000;

export interface Report {
  broker: BrokerId;
  status: PartitionStatus;
  atMs: number;
}

export interface ReportedLeader {
  leaderId: BrokerId;
  term: number;
  /** The leader's own report when it is the one that claimed leadership (has commit, match index, conf). */
  leaderReport?: Report;
}

function key(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}

export class ReportTable {
  private readonly byBroker = new Map<BrokerId, Map<string, Report>>();
  /** Brokers whose full report arrived since they (re-)registered: an RPC answer alone does not count. */
  private readonly fullyReported = new Set<BrokerId>();

  /** Replaces everything known about `broker` with a full KeepAlive report. */
  replaceAll(broker: BrokerId, statuses: PartitionStatus[], nowMs: number): void {
    if (statuses.length > MAX_REPORTED_PARTITIONS_PER_BROKER) {
      throw new Error(`broker ${broker} reported ${statuses.length} partitions, limit ${MAX_REPORTED_PARTITIONS_PER_BROKER}`);
    }
    const m = new Map<string, Report>();
    for (const s of statuses) m.set(key(s.topic, s.partition), { broker, status: s, atMs: nowMs });
    this.byBroker.set(broker, m);
    this.fullyReported.add(broker);
  }

  /** A KeepAlive delta: these statuses replace their previous ones, every other stays as it was. */
  merge(broker: BrokerId, statuses: PartitionStatus[], nowMs: number): void {
    const m = this.byBroker.get(broker);
    if (!m || !this.fullyReported.has(broker)) throw new Error(`broker ${broker} sent a delta with no full report to build on`);
    for (const s of statuses) m.set(key(s.topic, s.partition), { broker, status: s, atMs: nowMs });
    if (m.size > MAX_REPORTED_PARTITIONS_PER_BROKER) {
      this.dropBroker(broker);
      throw new Error(`broker ${broker} reported ${m.size} partitions, limit ${MAX_REPORTED_PARTITIONS_PER_BROKER}`);
    }
  }

  /** One fresher status (an RPC answer); kept until the next full report replaces it. */
  updateOne(broker: BrokerId, status: PartitionStatus, nowMs: number): void {
    let m = this.byBroker.get(broker);
    if (!m) {
      m = new Map();
      this.byBroker.set(broker, m);
    }
    m.set(key(status.topic, status.partition), { broker, status, atMs: nowMs });
  }

  /** True once a full report (KeepAlive) from `broker` arrived since it (re-)registered. */
  hasReported(broker: BrokerId): boolean {
    return this.fullyReported.has(broker);
  }

  /** True when any of `brokers` reports hosting this group (so it exists and Raft runs it). */
  hosted(topic: string, partition: number, group: number, brokers: BrokerId[]): boolean {
    return brokers.some((b) => {
      const r = this.get(b, topic, partition);
      return r !== undefined && Number(r.status.group) === group;
    });
  }

  /** True when `broker` reports that its replica of this group left it (a storage fault; see PartitionStatus.left). */
  reportsLeft(broker: BrokerId, topic: string, partition: number, group: number): boolean {
    const r = this.get(broker, topic, partition);
    return r !== undefined && Number(r.status.group) === group && r.status.left;
  }

  dropBroker(broker: BrokerId): void {
    this.byBroker.delete(broker);
    this.fullyReported.delete(broker);
  }

  statusesOf(broker: BrokerId): Report[] {
    return [...(this.byBroker.get(broker)?.values() ?? [])];
  }

  get(broker: BrokerId, topic: string, partition: number): Report | undefined {
    return this.byBroker.get(broker)?.get(key(topic, partition));
  }

  /**
   * The leader Raft elected, as far as live replicas have told us: the highest term any live replica of
   * this group reported; at that term, a replica that reports itself LEADER wins, else the leader id its
   * followers name (they learn it from the leader's first append, often before its own KeepAlive).
   */
  leaderOf(
    topic: string,
    partition: number,
    group: number,
    replicas: BrokerId[],
    alive: (b: BrokerId) => boolean,
  ): ReportedLeader | undefined {
    let best: ReportedLeader | undefined;
    for (const b of replicas) {
      if (!alive(b)) continue;
      const r = this.get(b, topic, partition);
      if (!r || Number(r.status.group) !== group) continue;
      const term = Number(r.status.term);
      const claims = r.status.role === Role.LEADER;
      const leaderId = claims ? b : r.status.leaderId;
      if (leaderId === 0 || !alive(leaderId) || !replicas.includes(leaderId)) continue;
      if (!best || term > best.term || (term === best.term && claims && !best.leaderReport)) {
        best = { leaderId, term, leaderReport: claims ? r : undefined };
      }
    }
    if (best && !best.leaderReport) {
      const own = this.get(best.leaderId, topic, partition);
      if (own && Number(own.status.group) === group && own.status.role === Role.LEADER && Number(own.status.term) === best.term) {
        best.leaderReport = own;
      }
    }
    return best;
  }

  /** How many partitions `broker` reports leading. */
  leaderCount(broker: BrokerId): number {
    let n = 0;
    for (const r of this.byBroker.get(broker)?.values() ?? []) if (r.status.role === Role.LEADER) n++;
    return n;
  }
}
