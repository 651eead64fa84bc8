// Tells brokers what the map says they host, until each confirms, and repairs drift seen in KeepAlive.
//
// Reconciliation rather than fire-and-forget: for every (broker, partition) the map assigns, the notifier
// remembers the partition epoch the broker last confirmed; anything behind is (re)sent with SetTopicRole,
// with per-target exponential backoff. A broker that reports a partition the map does not give it gets
// RemoveTopic; one that stops reporting a partition it confirmed gets SetTopicRole again. Only if the map
// itself handed out that partition's group, though: a group it never allocated means the map lost records
// (a damaged store), and the broker's data may be all that is left of an acknowledged topic.


import { create } from "@bufbuild/protobuf";
import {
  BrokerInfoSchema,
  RemoveTopicRequestSchema,
  Role,
  SetTopicRoleRequestSchema,
  type PartitionStatus,
} from "../proto/goulette_pb";
import type { ClientPool } from "../wire";
import { expectCase } from "../wire";
import type { Logger } from "../log";
import type { ClusterMap, PartitionRecord, TopicRecord } from "./cluster-map";
import type { ReportTable } from "./reports";
import type { BrokerId } from "./ring";

export const NOTIFY_BACKOFF_MIN_MS = 50;
export const NOTIFY_BACKOFF_MAX_MS = 5_000;
export const MAX_NOTIFY_IN_FLIGHT = 256; // RPCs to brokers at once, all targets together
export const NOTIFY_TIMEOUT_MS = 3_000;

export interface NotifierDeps {
  map: () => ClusterMap;
  pool: ClientPool;
  reports: ReportTable;
  isAlive: (b: BrokerId) => boolean;
  log: Logger;
  /** How long a fresh confirmation shields a partition from "missing in KeepAlive" (reports in flight). */
  driftGraceMs: number;
}

interface Target {
  confirmedEpoch: number;
  confirmedAtMs: number;
  inFlight: boolean;
  nextAttemptMs: number;
  backoffMs: number;
}

interface Removal {
  broker: BrokerId;
  topic: string;
  partition: number | undefined; // undefined: every partition of the topic
  groups: number[]; // the incarnations to remove (Raft group ids)
  inFlight: boolean;
  nextAttemptMs: number;
  backoffMs: number;
}

const targetKey = (b: BrokerId, topic: string, partition: number) => `${b}\u0000${topic}\u0000${partition}`;

/** A partition a broker holds under a group id the map never handed out. */
export interface UnknownPartition {
  broker: BrokerId;
  topic: string;
  partition: number;
  group: number;
}

export class Notifier {
  private readonly targets = new Map<string, Target>();
  /** Per broker, as of its latest report: what it holds that the map never allocated (left alone). */
  private readonly unknown = new Map<BrokerId, UnknownPartition[]>();
  private readonly removals = new Map<string, Removal>();
  private inFlight = 0;
  private stopped = false;

  constructor(private readonly deps: NotifierDeps) {}

  stop(): void {
    this.stopped = true;
  }

  /** True once `broker` confirmed SetTopicRole for this partition at `epoch` or later. */
  confirmed(broker: BrokerId, topic: string, partition: number, epoch: number): boolean {
    return (this.targets.get(targetKey(broker, topic, partition))?.confirmedEpoch ?? 0) >= epoch;
  }

  /** A (re-)registered broker may have lost in-memory state: tell it everything again. */
  forgetBroker(broker: BrokerId): void {
    const prefix = `${broker}\u0000`;
    for (const k of [...this.targets.keys()]) if (k.startsWith(prefix)) this.targets.delete(k);
  }

  /** Everything the map assigns is due now (after a change), rather than at its backoff time. */
  hurry(topic: string, partition: number, members: BrokerId[]): void {
    for (const b of members) {
      const t = this.targets.get(targetKey(b, topic, partition));
      if (t) {
        t.nextAttemptMs = 0;
        t.backoffMs = NOTIFY_BACKOFF_MIN_MS;
      }
    }
  }

  /** RemoveTopic on `broker`, retried until it confirms (or the broker is gone for good). */
  scheduleRemoval(broker: BrokerId, topic: string, partition: number | undefined, groups: number[]): void {
    const k = `${broker}\u0000${topic}\u0000${partition ?? "*"}`;
    const known = this.removals.get(k);
    if (known) {
      for (const g of groups) if (!known.groups.includes(g)) known.groups.push(g);
      return;
    }
    this.removals.set(k, { broker, topic, partition, groups: [...groups], inFlight: false, nextAttemptMs: 0, backoffMs: NOTIFY_BACKOFF_MIN_MS });
  }

  /** Partitions brokers hold under group ids the map never allocated, as of their latest reports. */
  unknownPartitions(): UnknownPartition[] {
    const map = this.deps.map();
    // Filtered again: a group adopted since the broker's last report is no longer unknown.
    return [...this.unknown.values()].flat().filter((u) => !map.handedOut(u.group));
  }

  /** A broker that left or re-registered reports afresh. */
  forgetUnknown(broker: BrokerId): void {
    this.unknown.delete(broker);
  }

  /** True while RPCs are out or removals wait: the sentinel keeps scanning every tick then. */
  busy(): boolean {
    return this.inFlight > 0 || this.removals.size > 0;
  }

  /** Compares a broker's KeepAlive with the map and schedules repairs; true when it found drift. */
  observe(broker: BrokerId, statuses: PartitionStatus[], nowMs: number): boolean {
    let drift = false;
    const map = this.deps.map();
    const reported = new Set<string>();
    const before = this.unknown.get(broker) ?? [];
    const unknown: UnknownPartition[] = [];
    for (const s of statuses) {
      reported.add(targetKey(broker, s.topic, s.partition));
      const p = map.partition(s.topic, s.partition);
      const assigned = p !== undefined && Number(s.group) === p.group && (p.replicas.includes(broker) || p.learners.includes(broker));
      if (!assigned && !map.handedOut(Number(s.group))) {
        const u = { broker, topic: s.topic, partition: s.partition, group: Number(s.group) };
        unknown.push(u);
        if (!before.some((b) => b.topic === u.topic && b.partition === u.partition && b.group === u.group)) {
          this.deps.log.error("sentinel map does not know a partition a broker holds (the map may have lost records): its data is left alone", { ...u });
        }
        continue;
      }
      if (!assigned) {
        this.deps.log.info("sentinel drift: broker hosts a partition it should not", {
          broker,
          topic: s.topic,
          partition: s.partition,
          group: Number(s.group),
        });
        this.scheduleRemoval(broker, s.topic, s.partition, [Number(s.group)]);
        drift = true;
      }
    }
    if (unknown.length > 0) this.unknown.set(broker, unknown);
    else this.unknown.delete(broker);
    for (const { topic, partition } of map.partitionsOf(broker)) {
      const k = targetKey(broker, topic.name, partition.partition);
      const t = this.targets.get(k);
      if (!t || t.confirmedEpoch === 0 || reported.has(k) || t.inFlight) continue;
      if (nowMs - t.confirmedAtMs < this.deps.driftGraceMs) continue;
      this.deps.log.info("sentinel drift: broker lost a partition", { broker, topic: topic.name, partition: partition.partition });
      t.confirmedEpoch = 0;
      t.nextAttemptMs = 0;
      drift = true;
    }
    return drift;
  }

  /** Sends what is due. Called from the sentinel's tick and after map changes. */
  run(nowMs: number): void {
    if (this.stopped) return;
    const map = this.deps.map();
    for (const topic of map.allTopics()) {
      for (const p of topic.partitions) {
        for (const b of [...p.replicas, ...p.learners]) {
          if (this.inFlight >= MAX_NOTIFY_IN_FLIGHT) return;
          // Only once we know what the broker hosts (its KeepAlive): a role sent blind after a restart
          // could name a stale leader and make Raft move leadership for nothing.
          if (!this.deps.isAlive(b) || !this.deps.reports.hasReported(b)) continue;
          const k = targetKey(b, topic.name, p.partition);
          let t = this.targets.get(k);
          if (!t) {
            t = { confirmedEpoch: 0, confirmedAtMs: 0, inFlight: false, nextAttemptMs: 0, backoffMs: NOTIFY_BACKOFF_MIN_MS };
            this.targets.set(k, t);
          }
          if (t.inFlight || t.confirmedEpoch >= p.epoch || t.nextAttemptMs > nowMs) continue;
          this.sendRole(b, topic, p, t);
        }
      }
    }
    for (const [k, r] of this.removals) {
      if (this.inFlight >= MAX_NOTIFY_IN_FLIGHT) return;
      if (r.inFlight || r.nextAttemptMs > nowMs || !this.deps.isAlive(r.broker)) continue;
      this.sendRemoval(k, r);
    }
    this.prune(map);
  }

  /** Drops bookkeeping for assignments the map no longer has. */
  private prune(map: ClusterMap): void {
    if (this.targets.size < 1024) return; // cheap enough to keep; prune only when it matters
    for (const k of [...this.targets.keys()]) {
      const [b, topic, partition] = k.split("\u0000");
      const p = map.partition(topic!, Number(partition));
      const member = p && (p.replicas.includes(Number(b)) || p.learners.includes(Number(b)));
      if (!member && !this.targets.get(k)!.inFlight) this.targets.delete(k);
    }
  }

  private sendRole(broker: BrokerId, topic: TopicRecord, p: PartitionRecord, t: Target): void {
    const map = this.deps.map();
    const address = map.broker(broker)?.address;
    if (!address) return;
    const request = buildSetTopicRole(map, this.deps.reports, topic, p, broker, this.deps.isAlive);
    const epoch = p.epoch;
    t.inFlight = true;
    this.inFlight++;
    this.deps.pool
      .get(address)
      .call({ case: "setTopicRole", value: request }, { timeoutMs: NOTIFY_TIMEOUT_MS })
      .then((res) => {
        const r = expectCase(res, "setTopicRoleResponse");
        t.confirmedEpoch = Math.max(t.confirmedEpoch, epoch);
        t.confirmedAtMs = performance.now();
        t.backoffMs = NOTIFY_BACKOFF_MIN_MS;
        if (r.status && r.status.topic === topic.name) this.deps.reports.updateOne(broker, r.status, performance.now());
        this.deps.log.debug("sentinel set-topic-role confirmed", { broker, topic: topic.name, partition: p.partition, epoch });
      })
      .catch((e: unknown) => {
        t.nextAttemptMs = performance.now() + t.backoffMs;
        t.backoffMs = Math.min(NOTIFY_BACKOFF_MAX_MS, t.backoffMs * 2);
        this.deps.log.debug("sentinel set-topic-role failed", { broker, topic: topic.name, partition: p.partition, error: String(e) });
      })
      .finally(() => {
        t.inFlight = false;
        this.inFlight--;
      });
  }

  private sendRemoval(k: string, r: Removal): void {
    const address = this.deps.map().broker(r.broker)?.address;
    if (!address) {
      this.removals.delete(k);
      return;
    }
    r.inFlight = true;
    this.inFlight++;
    const request = create(RemoveTopicRequestSchema, {
      topic: r.topic,
      allPartitions: r.partition === undefined,
      partition: r.partition ?? 0,
      groups: r.groups.map(BigInt),
    });
    this.deps.pool
      .get(address)
      .call({ case: "removeTopic", value: request }, { timeoutMs: NOTIFY_TIMEOUT_MS })
      .then((res) => {
        expectCase(res, "removeTopicResponse");
        this.removals.delete(k);
        this.deps.log.info("sentinel remove-topic confirmed", { broker: r.broker, topic: r.topic, partition: r.partition ?? "all" });
      })
      .catch(() => {
        r.nextAttemptMs = performance.now() + r.backoffMs;
        r.backoffMs = Math.min(NOTIFY_BACKOFF_MAX_MS, r.backoffMs * 2);
      })
      .finally(() => {
        r.inFlight = false;
        this.inFlight--;
      });
  }
}

/**
 * SetTopicRole for `broker`. Membership = followers ∪ learners ∪ {recipient}: `followers` holds every voter
 * except the recipient, `learners` every learner (the recipient too when it is one). The leader named is
 * the one brokers reported (Raft's choice) when known, else the first replica: only a hint either way.
 */
export function buildSetTopicRole(
  map: ClusterMap,
  reports: ReportTable,
  topic: TopicRecord,
  p: PartitionRecord,
  broker: BrokerId,
  isAlive: (b: BrokerId) => boolean,
) {
  const info = (id: BrokerId) => create(BrokerInfoSchema, { id, address: map.broker(id)?.address ?? "" });
  const members = [...p.replicas, ...p.learners];
  const reported = reports.leaderOf(topic.name, p.partition, p.group, members, isAlive);
  // The hint names the first replica only for a group nobody runs yet; for a running group without a known
  // leader (election under way) it names none, so the hint never fights Raft.
  const leaderId = reported?.leaderId ?? (reports.hosted(topic.name, p.partition, p.group, members) ? 0 : p.replicas[0]!);
  const role = p.learners.includes(broker) ? Role.LEARNER : broker === leaderId ? Role.LEADER : Role.FOLLOWER;
  return create(SetTopicRoleRequestSchema, {
    topic: topic.name,
    partition: p.partition,
    group: BigInt(p.group),
    role,
    followers: p.replicas.filter((b) => b !== broker).map(info),
    leaderId,
    leaderAddress: leaderId === 0 ? "" : (map.broker(leaderId)?.address ?? ""),
    learners: p.learners.map(info),
    config: topic.config,
    keepConfig: topic.configUnknown === true,
    mapEpoch: BigInt(p.epoch),
  });
}
