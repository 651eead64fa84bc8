// Replaces the replicas of brokers that are down (or left), and replicas that left their Raft group after
// a storage fault on a broker that is up, one membership change at a time per partition, driven through
// the partition's current Raft leader:
//   1. map: add the replacement as a learner (the notifier then sends it SetTopicRole as LEARNER)
//   2. ChangeReplicas add_learner        -> the leader starts replicating to it
//   3. wait until the leader reports match_index[replacement] >= its commit index
//   4. ChangeReplicas promote            -> voters = old voters + replacement (dead one still counted)
//   5. ChangeReplicas remove dead        -> back to RF voters, all of them alive
//   6. map: replicas = old - dead + replacement
// Each step is chosen from what the leader last reported (KeepAlive or the ChangeReplicas answer), so a
// retried or repeated step is harmless and a sentinel restart resumes where the brokers are. The majority
// is never lost by the move: a voter is only removed after its replacement is a caught-up voter.
//
// A move (balance.ts decides them) is the same plan for a replica that is alive: its broker is healthy but
// the ring places the partition elsewhere. If that replica leads when its turn to go comes, leadership is
// handed to a caught-up voter first, so the group never runs a leader that is leaving it.

import { create } from "@bufbuild/protobuf";
import { BrokerInfoSchema, ChangeReplicasRequestSchema } from "../proto/goulette_pb";
import type { ClientPool } from "../wire";
import { expectCase } from "../wire";
import type { Logger } from "../log";
import type { ClusterMap, MapCommand, MapResult, PartitionRecord } from "./cluster-map";
import type { Notifier } from "./notifier";
import type { ReportTable } from "./reports";
import { partitionKey, type BrokerId, type HashRing } from "./ring";

export const MAX_CONCURRENT_REPLACEMENTS = 64;
export const CHANGE_REPLICAS_TIMEOUT_MS = 3_000;
const RETRY_AFTER_FAILURE_MS = 200;
/** A move whose leaving replica leads asks it to hand over, then looks again after this long. */
const HAND_OVER_WAIT_MS = 300;
const NO_DEAD: BrokerId = 0; // a plan that only adds a replica back (nothing to remove)

export interface FailoverDeps {
  map: () => ClusterMap;
  propose: (c: MapCommand) => Promise<MapResult>;
  ring: HashRing;
  reports: ReportTable;
  notifier: Notifier;
  pool: ClientPool;
  isHealthy: (b: BrokerId) => boolean;
  isAlive: (b: BrokerId) => boolean;
  log: Logger;
  now: () => number;
}

interface Plan {
  /** replace: `dead` is down or left its group; move: `dead` is alive, and leaves for the ring's placement. */
  kind: "replace" | "move";
  topic: string;
  partition: number;
  group: number;
  dead: BrokerId;
  replacement: BrokerId;
  startedMs: number;
  busy: boolean;
  notBeforeMs: number;
  lastStep: string;
}

export class Failover {
  private readonly plans = new Map<string, Plan>(); // partition key -> its one change in flight
  private readonly waitingLogged = new Set<string>();
  private readonly strayBusy = new Set<string>(); // partitions with a stray-member removal in flight

  constructor(private readonly deps: FailoverDeps) {}

  /** True while a replacement or a stray removal is under way: the sentinel keeps scanning every tick. */
  busy(): boolean {
    return this.plans.size > 0 || this.strayBusy.size > 0;
  }

  /** Replacements (of dead or left replicas) under way; moves not counted. */
  replacing(): number {
    let n = 0;
    for (const p of this.plans.values()) if (p.kind === "replace") n++;
    return n;
  }

  /** Moves under way. */
  moving(): number {
    return this.plans.size - this.replacing();
  }

  hasPlan(topic: string, partition: number): boolean {
    return this.plans.has(partitionKey(topic, partition));
  }

  /**
   * Moves a live replica of `p` from `from` to `to` (balance.ts): learner, catch up, promote, hand over
   * leadership if `from` leads, remove, map. False when the partition already has a change under way.
   */
  startMove(topic: string, p: PartitionRecord, from: BrokerId, to: BrokerId): boolean {
    const k = partitionKey(topic, p.partition);
    if (this.plans.has(k) || this.plans.size >= MAX_CONCURRENT_REPLACEMENTS) return false;
    this.begin("move", topic, p, from, to);
    return true;
  }

  private begin(kind: Plan["kind"], topic: string, p: PartitionRecord, dead: BrokerId, replacement: BrokerId): void {
    const plan: Plan = {
      kind,
      topic,
      partition: p.partition,
      group: p.group,
      dead,
      replacement,
      startedMs: this.deps.now(),
      busy: false,
      notBeforeMs: 0,
      lastStep: "start",
    };
    this.plans.set(partitionKey(topic, p.partition), plan);
    this.deps.log.info(kind === "move" ? "sentinel move start" : "sentinel failover start", this.fields(plan));
  }

  /** Every change under way, oldest first: what cluster status shows. */
  inProgress(): { kind: "replace" | "move"; topic: string; partition: number; dead: BrokerId; replacement: BrokerId; step: string; runningMs: number }[] {
    const now = this.deps.now();
    return [...this.plans.values()]
      .sort((a, b) => a.startedMs - b.startedMs)
      .map((p) => ({
        kind: p.kind,
        topic: p.topic,
        partition: p.partition,
        dead: p.dead,
        replacement: p.replacement,
        step: p.lastStep,
        runningMs: Math.max(0, Math.round(now - p.startedMs)),
      }));
  }

  /** Starts replacements for partitions with a voter that is not alive, and moves running ones along. */
  run(): void {
    const map = this.deps.map();
    for (const topic of map.allTopics()) {
      for (const p of topic.partitions) {
        const k = partitionKey(topic.name, p.partition);
        const plan = this.plans.get(k);
        if (plan) {
          if (plan.group !== p.group) this.plans.delete(k); // topic deleted and recreated
          continue;
        }
        if (this.plans.size >= MAX_CONCURRENT_REPLACEMENTS) continue;
        // More replicas than the topic asks for: a replacement abandoned after its new replica was promoted
        // adopts Raft's voters, the old one among them. One goes from the map, a dead one first (rather
        // than replacing it); removeStrays then takes it out of Raft through the leader.
        if (p.replicas.length > topic.replicationFactor && p.learners.length === 0) {
          this.shrink(topic.name, p);
          continue;
        }
        // A learner whose broker is down, with no change under way to finish or abandon it (a restarted
        // sentinel lost the move or replacement that added it): nothing would ever take it out, and the
        // map would go on placing the partition on a dead broker (fault run 4204: an outage waited 30 s for
        // a move back that the sentinel had forgotten). Out of the map; removeStrays then takes it out of
        // Raft, and balance or failover adds a replica where one is needed.
        const deadLearner = p.learners.find((b) => !this.deps.isAlive(b));
        if (deadLearner !== undefined) {
          this.dropLearner(topic.name, p, deadLearner);
          continue;
        }
        // A gone replica is replaced where a broker is free (a dead broker's, or one that left its group).
        const dead = this.goneReplica(topic.name, p);
        if (dead !== undefined) {
          this.startPlan(topic.name, p, dead);
          // No broker free to replace it yet: learners the map no longer names still go meanwhile (a learner
          // counts for no majority; a stray voter waits, since removing one while a replica is dead could
          // leave too few of the rest alive).
          if (!this.plans.has(k)) this.removeStrays(topic.name, p, { learnersOnly: true });
          continue;
        }
        // A live replica the map names but Raft no longer has (removed by a change that was later
        // abandoned) is added back the same way a replacement is: learner, catch up, promote.
        const status = this.leaderStatus(topic.name, p);
        const missing = status && p.replicas.find((b) => !status.voters.includes(b) && !status.learners.includes(b));
        if (missing !== undefined && missing !== null) {
          this.startPlan(topic.name, p, NO_DEAD, missing);
          continue;
        }
        this.removeStrays(topic.name, p);
      }
    }
    for (const [k, plan] of this.plans) {
      const p = map.partition(plan.topic, plan.partition);
      if (!p || p.group !== plan.group) {
        this.plans.delete(k);
        continue;
      }
      if (!plan.busy && plan.notBeforeMs <= this.deps.now()) {
        plan.busy = true;
        this.step(plan, p).then(
          (progressed) => {
            plan.busy = false;
            // A step that changed something is followed at once by the next (its answer carried the
            // leader's new status), rather than a tick later.
            if (progressed) this.run();
          },
          (e: unknown) => {
            plan.busy = false;
            plan.notBeforeMs = this.deps.now() + RETRY_AFTER_FAILURE_MS;
            this.deps.log.warn("sentinel failover step failed", { ...this.fields(plan), step: plan.lastStep, error: String(e) });
          },
        );
      }
    }
  }

  /**
   * A replica whose broker is not alive, else one that left its group after a storage fault: as good as
   * dead for this partition until its broker restarts (which may be never).
   */
  private goneReplica(topic: string, p: PartitionRecord): BrokerId | undefined {
    return (
      p.replicas.find((b) => !this.deps.isAlive(b)) ??
      p.replicas.find((b) => this.deps.reports.reportsLeft(b, topic, p.partition, p.group))
    );
  }

  /**
   * Drops one replica of an over-replicated partition from the map: one that is down (or left its group),
   * else a follower, the one the ring puts last. Raft follows through removeStrays.
   */
  private shrink(topic: string, p: PartitionRecord): void {
    const k = partitionKey(topic, p.partition);
    if (this.strayBusy.has(k)) return;
    const lastFollower = () => {
      const leader = this.deps.reports.leaderOf(topic, p.partition, p.group, p.replicas, this.deps.isAlive)?.leaderId;
      return [...this.deps.ring.walk(k, (b) => p.replicas.includes(b))].reverse().find((b) => b !== leader);
    };
    const drop = this.goneReplica(topic, p) ?? lastFollower();
    if (drop === undefined) return;
    this.strayBusy.add(k);
    const replicas = p.replicas.filter((b) => b !== drop);
    this.deps.log.info("sentinel dropping a replica beyond the replication factor", { topic, partition: p.partition, broker: drop, replicas });
    this.deps
      .propose({ type: "set-replicas", topic, partition: p.partition, replicas, learners: [], expectEpoch: p.epoch })
      .then((r) => {
        if (!r.ok) throw new Error(r.message);
        this.deps.notifier.hurry(topic, p.partition, replicas);
      })
      .catch((e: unknown) => this.deps.log.warn("sentinel could not drop a replica", { topic, partition: p.partition, broker: drop, error: String(e) }))
      .finally(() => setTimeout(() => this.strayBusy.delete(k), RETRY_AFTER_FAILURE_MS));
  }

  private dropLearner(topic: string, p: PartitionRecord, learner: BrokerId): void {
    const k = partitionKey(topic, p.partition);
    if (this.strayBusy.has(k)) return;
    this.strayBusy.add(k);
    const learners = p.learners.filter((b) => b !== learner);
    this.deps.log.info("sentinel dropping a learner whose broker is down", { topic, partition: p.partition, broker: learner });
    this.deps
      .propose({ type: "set-replicas", topic, partition: p.partition, replicas: p.replicas, learners, expectEpoch: p.epoch })
      .then((r) => {
        if (!r.ok) throw new Error(r.message);
        this.deps.notifier.hurry(topic, p.partition, [...p.replicas, ...learners]);
      })
      .catch((e: unknown) => this.deps.log.warn("sentinel could not drop a learner", { topic, partition: p.partition, broker: learner, error: String(e) }))
      .finally(() => setTimeout(() => this.strayBusy.delete(k), RETRY_AFTER_FAILURE_MS));
  }

  /**
   * Raft members the map does not name (a replacement abandoned after the leader had added it, e.g. when
   * the replacement died too) are removed through the leader, one change at a time, when no plan runs.
   */
  private removeStrays(topic: string, p: PartitionRecord, opts: { learnersOnly?: boolean } = {}): void {
    const k = partitionKey(topic, p.partition);
    if (this.strayBusy.has(k)) return;
    const members = [...p.replicas, ...p.learners];
    const leader = this.deps.reports.leaderOf(topic, p.partition, p.group, members, this.deps.isAlive);
    const status = leader?.leaderReport?.status;
    if (!leader || !status) return;
    const stray = [...status.learners, ...(opts.learnersOnly ? [] : status.voters)].find((b) => !members.includes(b));
    const address = this.deps.map().broker(leader.leaderId)?.address;
    if (stray === undefined || !address) return;
    this.strayBusy.add(k);
    this.deps.log.info("sentinel removing a replica the map does not name", { topic, partition: p.partition, broker: stray, leader: leader.leaderId });
    const request = create(ChangeReplicasRequestSchema, { topic, partition: p.partition, group: BigInt(p.group), remove: stray });
    this.deps.pool
      .get(address)
      .call({ case: "changeReplicas", value: request }, { timeoutMs: CHANGE_REPLICAS_TIMEOUT_MS })
      .then((res) => {
        const r = expectCase(res, "changeReplicasResponse");
        if (r.status && r.status.topic === topic) this.deps.reports.updateOne(leader.leaderId, r.status, this.deps.now());
      })
      .catch((e: unknown) => this.deps.log.warn("sentinel stray removal failed", { topic, partition: p.partition, broker: stray, error: String(e) }))
      .finally(() => {
        // Let the next report show the result before trying again.
        setTimeout(() => this.strayBusy.delete(k), RETRY_AFTER_FAILURE_MS);
      });
  }

  private leaderStatus(topic: string, p: PartitionRecord) {
    const members = [...p.replicas, ...p.learners];
    return this.deps.reports.leaderOf(topic, p.partition, p.group, members, this.deps.isAlive)?.leaderReport?.status;
  }

  private startPlan(topic: string, p: PartitionRecord, dead: BrokerId, readd?: BrokerId): void {
    const k = partitionKey(topic, p.partition);
    // A replacement already in the map (sentinel restarted mid-change) is resumed, not chosen again.
    let replacement = readd ?? p.learners.find((b) => this.deps.isHealthy(b));
    replacement ??= this.deps.ring
      .walk(k, (b) => this.deps.isHealthy(b) && !p.replicas.includes(b) && !p.learners.includes(b))
      .next().value as BrokerId | undefined;
    if (replacement === undefined) {
      if (!this.waitingLogged.has(k)) {
        this.waitingLogged.add(k);
        this.deps.log.warn("sentinel failover waiting: no healthy broker to replace a replica", { topic, partition: p.partition, dead });
      }
      return;
    }
    this.waitingLogged.delete(k);
    this.begin("replace", topic, p, dead, replacement);
  }

  /** One step; true when it changed something (so the next may follow at once). */
  private async step(plan: Plan, p: PartitionRecord): Promise<boolean> {
    const { deps } = this;
    const k = partitionKey(plan.topic, plan.partition);

    if (!deps.isAlive(plan.replacement)) {
      // The replacement died too: take it back out and choose again on the next run.
      this.plans.delete(k);
      deps.log.warn("sentinel failover abandoned: replacement is down", this.fields(plan));
      const status = this.leaderStatus(plan.topic, p);
      if (status && status.voters.includes(plan.replacement)) {
        // Already promoted: Raft's voters are the truth now; a dead one among them is replaced next.
        const voters = [...p.replicas.filter((b) => status.voters.includes(b)), ...status.voters.filter((b) => !p.replicas.includes(b))];
        await this.proposeReplicas(plan, p, voters, p.learners.filter((b) => !voters.includes(b)), "map-adopt-raft-voters");
      } else if (p.learners.includes(plan.replacement)) {
        await this.proposeReplicas(plan, p, p.replicas, p.learners.filter((b) => b !== plan.replacement));
      }
      return true;
    }

    // 1. the map names the replacement as a learner so the notifier creates its replica
    if (!p.learners.includes(plan.replacement) && !p.replicas.includes(plan.replacement)) {
      await this.proposeReplicas(plan, p, p.replicas, [...p.learners, plan.replacement], "map-add-learner");
      return true;
    }

    // Membership as Raft has it, from the live leader's own report.
    const members = [...p.replicas, ...p.learners];
    const leader = deps.reports.leaderOf(plan.topic, plan.partition, plan.group, members, deps.isAlive);
    const status = leader?.leaderReport?.status;
    if (!leader || !status) {
      this.note(plan, "waiting-for-leader");
      return false;
    }
    const voters = status.voters;
    const learners = status.learners;
    const leaderAddress = deps.map().broker(leader.leaderId)?.address;
    if (!leaderAddress) return false;

    if (!voters.includes(plan.replacement) && !learners.includes(plan.replacement)) {
      if (!deps.notifier.confirmed(plan.replacement, plan.topic, plan.partition, p.epoch)) {
        this.note(plan, "waiting-for-learner-replica");
        return false;
      }
      const address = deps.map().broker(plan.replacement)?.address ?? "";
      await this.change(plan, leader.leaderId, leaderAddress, "add-learner", {
        addLearner: create(BrokerInfoSchema, { id: plan.replacement, address }),
      });
      return true;
    }
    if (learners.includes(plan.replacement)) {
      const match = Number(status.matchIndex[plan.replacement] ?? 0n);
      const commit = Number(status.commitIndex);
      if (match < commit) {
        this.note(plan, "catching-up", { match, commit });
        return false;
      }
      await this.change(plan, leader.leaderId, leaderAddress, "promote", { promote: plan.replacement });
      return true;
    }
    if (voters.includes(plan.dead) || learners.includes(plan.dead)) {
      if (plan.kind === "move" && leader.leaderId === plan.dead) {
        // The leaving replica leads: hand over to the most caught-up voter that stays, and remove it once
        // another leads (the next report says who). The transfer may take a moment: asked again later.
        const to = voters
          .filter((v) => v !== plan.dead)
          .sort((a, b) => Number(status.matchIndex[b] ?? 0n) - Number(status.matchIndex[a] ?? 0n))[0];
        if (to === undefined) return false;
        await this.change(plan, leader.leaderId, leaderAddress, "hand-over", { transferLeaderTo: to });
        plan.notBeforeMs = deps.now() + HAND_OVER_WAIT_MS;
        return false;
      }
      await this.change(plan, leader.leaderId, leaderAddress, "remove", { remove: plan.dead });
      return true;
    }
    // Raft has the new membership: record it in the map, in the dead one's position.
    const replicas = p.replicas.map((b) => (b === plan.dead ? plan.replacement : b)).filter((b, i, a) => a.indexOf(b) === i);
    await this.proposeReplicas(plan, p, replicas, p.learners.filter((b) => b !== plan.replacement), "map-commit");
    this.plans.delete(k);
    deps.log.info(plan.kind === "move" ? "sentinel move done" : "sentinel failover done", {
      ...this.fields(plan),
      tookMs: Math.round(deps.now() - plan.startedMs),
      replicas,
    });
    // The dead broker, when it returns, reports a partition it no longer has: the notifier removes it.
    return true;
  }

  private async change(
    plan: Plan,
    leaderId: BrokerId,
    leaderAddress: string,
    step: string,
    fields: { addLearner?: ReturnType<typeof create<typeof BrokerInfoSchema>>; promote?: number; remove?: number; transferLeaderTo?: number },
  ): Promise<void> {
    plan.lastStep = step;
    this.deps.log.info("sentinel failover step", { ...this.fields(plan), step, leader: leaderId });
    const request = create(ChangeReplicasRequestSchema, {
      topic: plan.topic,
      partition: plan.partition,
      group: BigInt(plan.group),
      ...fields,
    });
    const res = await this.deps.pool
      .get(leaderAddress)
      .call({ case: "changeReplicas", value: request }, { timeoutMs: CHANGE_REPLICAS_TIMEOUT_MS });
    const r = expectCase(res, "changeReplicasResponse");
    if (r.status && r.status.topic === plan.topic && r.status.partition === plan.partition) {
      this.deps.reports.updateOne(leaderId, r.status, this.deps.now());
    }
  }

  private async proposeReplicas(
    plan: Plan,
    p: PartitionRecord,
    replicas: BrokerId[],
    learners: BrokerId[],
    step?: string,
  ): Promise<void> {
    if (step) {
      plan.lastStep = step;
      this.deps.log.info("sentinel failover step", { ...this.fields(plan), step, replicas, learners });
    }
    const r = await this.deps.propose({
      type: "set-replicas",
      topic: plan.topic,
      partition: plan.partition,
      replicas,
      learners,
      expectEpoch: p.epoch,
    });
    if (!r.ok) throw new Error(`map refused ${step ?? "set-replicas"}: ${r.message}`);
    this.deps.notifier.hurry(plan.topic, plan.partition, [...replicas, ...learners]);
  }

  private note(plan: Plan, step: string, extra: Record<string, unknown> = {}): void {
    if (plan.lastStep === step) return; // log each state once, not every tick
    plan.lastStep = step;
    this.deps.log.info("sentinel failover step", { ...this.fields(plan), step, ...extra });
  }

  private fields(plan: Plan): Record<string, unknown> {
    return { kind: plan.kind, topic: plan.topic, partition: plan.partition, group: plan.group, dead: plan.dead, replacement: plan.replacement };
  }
}
