// The sentinel's request handlers: broker registry, topic admin, metadata and leader discovery, producer
// ids and consumer groups. State lives in the pieces it wires together: the durable map (map-store), the
// health tracker, the ring, the table of broker reports, the notifier and failover.

import { create } from "@bufbuild/protobuf";
import {
  AlterTopicConfigResponseSchema,
  BrokerHealth,
  BrokerInfoSchema,
  BrokerStatusSchema,
  ClusterStatusResponseSchema,
  ReplicaChangeSchema,
  CreateTopicResponseSchema,
  DeleteTopicResponseSchema,
  DescribeTopicResponseSchema,
  ErrorCode,
  GetBrokerTopicRoleRequestSchema,
  GetTopicLeaderResponseSchema,
  GroupHeartbeatResponseSchema,
  InitProducerResponseSchema,
  JoinGroupResponseSchema,
  KeepAliveResponseSchema,
  LeaveGroupResponseSchema,
  ListTopicsResponseSchema,
  MetadataResponseSchema,
  PartitionMetadataSchema,
  RegisterBrokerResponseSchema,
  SentinelStatusSchema,
  TopicMetadataSchema,
  TopicPartitionsSchema,
  UnregisterBrokerResponseSchema,
  type PartitionMetadata,
  type TopicMetadata,
} from "../proto/goulette_pb";
import { ClientPool, WireClient, WireError, expectCase, parseAddress, parseTopicConfig, TOPIC_CONFIG_KEYS, type Body, type BodyOf } from "../wire";
import type { Logger } from "../log";
import type { ClusterMap, MapCommand, MapResult, PartitionRecord, TopicRecord } from "./cluster-map";
import { validateTopicName, MAX_PARTITIONS_PER_TOPIC, MAX_REPLICATION_FACTOR } from "./cluster-map";
import { Balancer } from "./balance";
import { Failover } from "./failover";
import { GroupCoordinator, type GroupErrorCode } from "./groups";
import { HealthTracker, type Health, type HealthTransition } from "./health";
import type { MapStore } from "./map-store";
import { NotSentinelLeaderError } from "./raft-map-store";
import { Notifier } from "./notifier";
import { ReportTable } from "./reports";
import { HashRing, partitionKey, type BrokerId } from "./ring";
import type { SentinelOptions } from "./options";

export const PROBE_TIMEOUT_MS = 300; // a live broker on a LAN answers in well under this
export const CREATE_TOPIC_CONFIRM_TIMEOUT_MS = 3_000; // create waits this long for replicas to confirm
export const MAX_UNREACHABLE_REPORTED = 16;
export const LEADER_WAIT_MS = 1_000; // GetTopicLeader waits this long for an election to finish
const LEADER_REPROBE_MS = 50;
export const STALL_TOLERANCE_MS = 250; // tick lateness beyond which the sentinel counts itself as stalled
/** Keep-alive intervals a lost topic must be reported for before it is adopted: every broker has spoken. */
const ADOPT_AFTER_BEATS = 10;
/**
 * Keep-alive intervals from the start of a leadership before InitProducer is answered without having heard
 * from every broker: each live broker beats (registering again first if need be) within one interval, so
 * the first bound covers brokers the map lost, and the second gives up on brokers that are down.
 */
const PRODUCER_IDS_MIN_BEATS = 2;
const PRODUCER_IDS_MAX_BEATS = 4;
/**
 * The notifier's and failover's scans look at every partition. With nothing happening (an idle cluster
 * of many partitions) they run this often; for BUSY_SCAN_FOR_MS after anything happens (a map change, a
 * health transition, drift in a report, RPCs out, a replacement running), every tick.
 */
const QUIET_SCAN_EVERY_MS = 1_000;
const BUSY_SCAN_FOR_MS = 3_000;
/** On a beat that says "unchanged", drift is checked at most this often per broker. */
const UNCHANGED_OBSERVE_EVERY_MS = 1_000;
const DEFAULT_REPLICAS = 3;

type Handled = Body | Promise<Body>;

export interface SentinelDeps {
  opts: SentinelOptions;
  store: MapStore;
  address: () => string; // advertised address, known once listening
  log: Logger;
  version: string;
  tickMs: number; // how often tick() is called
  sentinels: () => { id: number; address: string; leader: boolean }[];
}

export class Sentinel {
  readonly health: HealthTracker;
  readonly ring: HashRing;
  readonly reports = new ReportTable();
  /** The highest producer id any broker reported recording: never handed out again (see initProducer). */
  private highestProducerIdSeen = 0;
  /** Brokers whose highest producer id this sentinel has heard since it began leading. */
  private readonly producerIdsFrom = new Set<BrokerId>();
  /** Lost topics (see adoptLostTopics) by name: when brokers were first seen holding them. */
  private readonly lostSeenAtMs = new Map<string, number>();
  private adopting = false;
  /** Per broker, why it said it can no longer store writes (soft state: every beat says it again). */
  private readonly storageErrors = new Map<number, string>();
  readonly notifier: Notifier;
  readonly failover: Failover;
  readonly balancer: Balancer;
  readonly groups: GroupCoordinator;
  private readonly pool: ClientPool;
  private readonly probes = new Map<BrokerId, Promise<boolean>>();
  private readonly createdAtMs = performance.now();
  private lastTickMs = performance.now();
  private readonly observedAtMs = new Map<number, number>();
  private busyUntilMs = 0;
  private lastScanMs = 0;
  private scannedMapVersion = -1;
  private stopped = false;

  constructor(private readonly deps: SentinelDeps) {
    const { opts, log } = deps;
    this.health = new HealthTracker({ suspiciousAfterMs: opts.suspiciousAfterMs, downAfterMs: opts.downAfterMs });
    this.ring = new HashRing(opts.virtualNodes);
    this.pool = new ClientPool({ maxFrameBytes: opts.maxFrameBytes, connectTimeoutMs: 1_000, requestTimeoutMs: 3_000, backoffMaxMs: 500 });
    // Brokers known from the durable map are on the ring but not healthy until they beat again.
    for (const b of this.map.allBrokers()) if (!b.left) this.ring.add(b.id);
    this.notifier = new Notifier({
      map: () => this.map,
      pool: this.pool,
      reports: this.reports,
      isAlive: (b) => this.health.isAlive(b),
      log,
      driftGraceMs: 3 * opts.keepAliveMs,
    });
    this.failover = new Failover({
      map: () => this.map,
      propose: (c) => this.propose(c),
      ring: this.ring,
      reports: this.reports,
      notifier: this.notifier,
      pool: this.pool,
      isHealthy: (b) => this.placeable(b),
      isAlive: (b) => this.isAliveForFailover(b),
      log,
      now: () => performance.now(),
    });
    this.balancer = new Balancer({
      map: () => this.map,
      ring: this.ring,
      reports: this.reports,
      failover: this.failover,
      healthyForMs: (b) => this.health.healthyForMs(b, performance.now()),
      placeable: (b) => this.placeable(b),
      isAlive: (b) => this.isAliveForFailover(b),
      balanceAfterMs: opts.balanceAfterMs,
    });
    if (this.map.clusterId === "") {
      void this.propose({ type: "set-cluster-id", clusterId: crypto.randomUUID() }).catch((e: unknown) =>
        log.warn("sentinel could not set the cluster id", { error: String(e) }),
      );
    }
    this.groups = new GroupCoordinator((t) => this.map.topic(t)?.partitions.length, crypto.randomUUID().slice(0, 8));
  }

  private get tickMs(): number {
    return this.deps.tickMs;
  }

  get map(): ClusterMap {
    return this.deps.store.map;
  }

  private propose(c: MapCommand): Promise<MapResult> {
    if (this.stopped) return Promise.reject(new WireError(ErrorCode.NOT_SENTINEL_LEADER, "this sentinel stopped leading the map"));
    return this.deps.store.propose(c).catch((e: unknown) => {
      if (e instanceof NotSentinelLeaderError) {
        const leaderAddress = e.leader > 0 ? (this.deps.opts.peers[e.leader - 1] ?? "") : "";
        throw new WireError(ErrorCode.NOT_SENTINEL_LEADER, e.message, { leaderId: e.leader, leaderAddress });
      }
      throw e;
    });
  }

  /**
   * Brokers from the map that have not beaten since this sentinel started are given one down-interval of
   * grace before failover counts them dead: a restarted sentinel must not re-replicate a healthy cluster.
   */
  private isAliveForFailover(b: BrokerId): boolean {
    if (this.health.known(b)) return this.health.isAlive(b);
    if (this.map.broker(b)?.left) return false;
    return performance.now() - this.createdAtMs < this.deps.opts.downAfterMs;
  }

  /** Periodic work: health, group sessions, notifications, failover, balance. */
  tick(): void {
    if (this.stopped) return;
    const now = performance.now();
    // A tick much later than scheduled means this process stalled: do not count that stall as the
    // brokers' silence (their beats are queued behind it), or one pause would declare everyone down.
    const lateMs = now - this.lastTickMs - this.tickMs;
    this.lastTickMs = now;
    if (lateMs > STALL_TOLERANCE_MS) {
      this.health.forgive(lateMs);
      this.deps.log.warn("sentinel stalled; not counting it as broker silence", { stalledMs: Math.round(lateMs) });
    }
    for (const t of this.health.evaluate(now)) this.onTransition(t);
    for (const m of this.groups.expire(now)) this.deps.log.info("sentinel group member expired", { member: m });
    if (this.map.version !== this.scannedMapVersion || this.notifier.busy() || this.failover.busy()) this.busyUntilMs = now + BUSY_SCAN_FOR_MS;
    if (now < this.busyUntilMs || now - this.lastScanMs >= QUIET_SCAN_EVERY_MS) {
      this.lastScanMs = now;
      this.scannedMapVersion = this.map.version;
      this.notifier.run(now);
      this.failover.run();
      this.balancer.run();
      void this.adoptLostTopics(now);
    }
  }

  /**
   * Takes back topics the map lost (a damaged or wiped store) from what brokers report holding: once a
   * name has been reported for a while (every live broker has beaten several times) with every partition
   * from 0 up held under one group each, it becomes a topic again with those groups and, per partition,
   * the voters its most recent report names. Its config is not known any more (the brokers keep applying
   * theirs, until `topic alter` sets one). Until then, and for anything that does not add up, cluster
   * status warns.
   */
  private async adoptLostTopics(now: number): Promise<void> {
    const lost = this.notifier.unknownPartitions();
    if (lost.length === 0) {
      this.lostSeenAtMs.clear();
      return;
    }
    if (this.adopting) return;
    this.adopting = true;
    try {
      const byTopic = new Map<string, Map<number, Set<number>>>(); // topic -> partition -> groups
      for (const u of lost) {
        let parts = byTopic.get(u.topic);
        if (!parts) byTopic.set(u.topic, (parts = new Map()));
        let groups = parts.get(u.partition);
        if (!groups) parts.set(u.partition, (groups = new Set()));
        groups.add(u.group);
      }
      for (const name of [...this.lostSeenAtMs.keys()]) if (!byTopic.has(name)) this.lostSeenAtMs.delete(name);
      for (const [name, parts] of byTopic) {
        if (this.map.topic(name)) continue; // the name was taken again: nothing to adopt into
        const seen = this.lostSeenAtMs.get(name) ?? now;
        this.lostSeenAtMs.set(name, seen);
        if (now - seen < ADOPT_AFTER_BEATS * this.deps.opts.keepAliveMs) continue;
        const count = Math.max(...parts.keys()) + 1;
        const partitions: { group: number; replicas: BrokerId[] }[] = [];
        let config: Record<string, string> | undefined; // partition 0's leader's (the latest term's)
        for (let i = 0; i < count; i++) {
          const groups = parts.get(i);
          if (!groups || groups.size !== 1) break; // a partition nobody holds, or two incarnations of it
          const group = [...groups][0]!;
          let best: { term: bigint; voters: number[]; config: Record<string, string> } | undefined;
          const holders: BrokerId[] = [];
          for (const b of this.map.allBrokers()) {
            const r = this.reports.get(b.id, name, i);
            if (!r || Number(r.status.group) !== group) continue;
            holders.push(b.id);
            if (!best || r.status.term > best.term) best = { term: r.status.term, voters: [...r.status.voters], config: r.status.config };
          }
          const voters = best && best.voters.length > 0 ? best.voters : holders;
          partitions.push({ group, replicas: voters.filter((v) => this.map.broker(v) !== undefined) });
          if (i === 0) config = best?.config;
        }
        if (partitions.length !== count || partitions.some((p) => p.replicas.length === 0)) continue;
        const r = await this.propose({ type: "adopt-topic", name, partitions, config: adoptableConfig(config) });
        if (!r.ok) {
          this.deps.log.warn("sentinel could not adopt a lost topic", { topic: name, code: r.code, error: r.message });
          continue;
        }
        this.lostSeenAtMs.delete(name);
        this.deps.log.warn("sentinel adopted a topic its map had lost, from the brokers' reports", {
          topic: name,
          partitions: partitions.map((p, i) => ({ partition: i, group: p.group, replicas: p.replicas })),
        });
        this.groups.topicsChanged([name]);
        this.activity();
      }
    } catch (e) {
      this.deps.log.warn("sentinel adoption of lost topics failed", { error: (e as Error).message });
    } finally {
      this.adopting = false;
    }
  }

  /** Something happened that the scans should react to within a tick. */
  private activity(): void {
    this.busyUntilMs = performance.now() + BUSY_SCAN_FOR_MS;
  }

  stop(): void {
    this.stopped = true;
    this.notifier.stop();
    this.pool.closeAll();
  }

  private onTransition(t: HealthTransition): void {
    this.activity();
    const fields = { broker: t.broker, from: t.from, to: t.to, silentMs: Math.round(t.silentMs) };
    if (t.to === "down") this.deps.log.warn("sentinel broker down", fields);
    else this.deps.log.info("sentinel broker health", fields);
  }

  handle(body: Body): Handled {
    switch (body.case) {
      case "registerBroker":
        return this.registerBroker(body.value);
      case "unregisterBroker":
        return this.unregisterBroker(body.value);
      case "keepAlive":
        return this.keepAlive(body.value);
      case "createTopic":
        return this.createTopic(body.value);
      case "deleteTopic":
        return this.deleteTopic(body.value);
      case "alterTopicConfig":
        return this.alterTopicConfig(body.value);
      case "listTopics":
        return { case: "listTopicsResponse", value: create(ListTopicsResponseSchema, { topics: this.map.allTopics().map((t) => this.topicMetadata(t)) }) };
      case "describeTopic": {
        const t = this.requireTopic(body.value.name);
        return { case: "describeTopicResponse", value: create(DescribeTopicResponseSchema, { topic: this.topicMetadata(t) }) };
      }
      case "metadata":
        return this.metadata(body.value);
      case "clusterStatus":
        return this.clusterStatus();
      case "getTopicLeader":
        return this.getTopicLeader(body.value);
      case "initProducer":
        return this.initProducer();
      case "joinGroup":
        return this.joinGroup(body.value);
      case "groupHeartbeat": {
        const v = body.value;
        const r = this.groups.heartbeat(v.groupId, v.memberId, v.generation, performance.now());
        if (!r.ok) throw groupError(r.code, r.message);
        return { case: "groupHeartbeatResponse", value: create(GroupHeartbeatResponseSchema, {}) };
      }
      case "leaveGroup": {
        const r = this.groups.leave(body.value.groupId, body.value.memberId);
        if (!r.ok) throw groupError(r.code, r.message);
        return { case: "leaveGroupResponse", value: create(LeaveGroupResponseSchema, {}) };
      }
      default:
        throw new WireError(ErrorCode.UNSUPPORTED_REQUEST, `a sentinel does not serve ${body.case ?? "an empty body"}`);
    }
  }

  // ---- registry ----------------------------------------------------------------------------------------

  private async registerBroker(req: BodyOf<"registerBroker">): Promise<Body> {
    const id = req.brokerId;
    if (!(id > 0)) throw new WireError(ErrorCode.INVALID_ARGUMENT, "broker_id must be a positive integer");
    try {
      parseAddress(req.address);
    } catch {
      throw new WireError(ErrorCode.INVALID_ARGUMENT, `broker address "${req.address}" is not host:port`);
    }
    const known = this.map.broker(id);
    if (known && known.address !== req.address && !known.left && this.health.isAlive(id)) {
      throw new WireError(
        ErrorCode.DUPLICATE_BROKER,
        `broker id ${id} is already registered at ${known.address}, which is alive; refusing ${req.address}`,
      );
    }
    const changed =
      !known ||
      known.left ||
      known.address !== req.address ||
      known.fsyncPolicy !== req.fsyncPolicy ||
      known.version !== req.version ||
      known.capacity !== req.capacity;
    if (changed) {
      const r = await this.propose({
        type: "register-broker",
        id,
        address: req.address,
        fsyncPolicy: req.fsyncPolicy,
        version: req.version,
        capacity: req.capacity,
      });
      if (!r.ok) throw new WireError(ErrorCode.INVALID_ARGUMENT, r.message);
      if (known && known.address !== req.address) this.pool.close(known.address);
    }
    const t = this.health.beat(id, performance.now());
    if (t) this.onTransition(t);
    this.ring.add(id);
    // A restarted broker gets its roles again, once its first KeepAlive says what it still hosts.
    this.notifier.forgetBroker(id);
    this.notifier.forgetUnknown(id);
    this.reports.dropBroker(id);
    this.deps.log.info("sentinel broker registered", { broker: id, address: req.address, fsync: req.fsyncPolicy });
    return {
      case: "registerBrokerResponse",
      value: create(RegisterBrokerResponseSchema, {
        keepAliveIntervalMs: this.deps.opts.keepAliveMs,
        clusterId: this.map.clusterId,
        acceptsDeltaReports: true,
      }),
    };
  }

  private async unregisterBroker(req: BodyOf<"unregisterBroker">): Promise<Body> {
    const known = this.map.broker(req.brokerId);
    if (!known) throw new WireError(ErrorCode.UNKNOWN_BROKER, `broker ${req.brokerId} is not registered`);
    if (!known.left) {
      const r = await this.propose({ type: "unregister-broker", id: req.brokerId });
      if (!r.ok) throw new WireError(ErrorCode.INVALID_ARGUMENT, r.message);
    }
    const t = this.health.leave(req.brokerId);
    if (t) this.onTransition(t);
    this.reports.dropBroker(req.brokerId);
    this.notifier.forgetUnknown(req.brokerId);
    this.storageErrors.delete(req.brokerId);
    this.deps.log.info("sentinel broker unregistered", { broker: req.brokerId });
    return { case: "unregisterBrokerResponse", value: create(UnregisterBrokerResponseSchema, {}) };
  }

  private keepAlive(req: BodyOf<"keepAlive">): Body {
    const id = req.brokerId;
    const known = this.map.broker(id);
    const h = this.health.health(id);
    if (!known || known.left || h === undefined || h === "left" || (req.address !== "" && req.address !== known.address)) {
      // After a sentinel restart (or an unregister) the broker must introduce itself again.
      throw new WireError(ErrorCode.UNKNOWN_BROKER, `broker ${id} is not registered with this sentinel; register again`);
    }
    const now = performance.now();
    if (Number(req.highestProducerId) > this.highestProducerIdSeen) this.highestProducerIdSeen = Number(req.highestProducerId);
    this.producerIdsFrom.add(id);
    if (req.storageError !== "") {
      if (this.storageErrors.get(id) !== req.storageError) this.deps.log.warn("broker cannot store writes", { broker: id, error: req.storageError });
      this.storageErrors.set(id, req.storageError);
    } else {
      this.storageErrors.delete(id);
    }
    const t = this.health.beat(id, now);
    if (t) this.onTransition(t);
    if (req.unchanged || req.delta) {
      // The broker says what changed since its last report (nothing, or some statuses): build on that
      // report, or ask for a full one when there is none (this sentinel restarted or just became leader).
      if (!this.reports.hasReported(id)) return { case: "keepAliveResponse", value: create(KeepAliveResponseSchema, { sendFull: true }) };
      if (req.delta) this.reports.merge(id, req.partitions, now);
      // Drift checks look at every partition, and a delta never changes which ones a broker holds (a full
      // report does): once a second is enough.
      if (now - (this.observedAtMs.get(id) ?? 0) >= UNCHANGED_OBSERVE_EVERY_MS) {
        this.observedAtMs.set(id, now);
        if (this.notifier.observe(id, this.reports.statusesOf(id).map((r) => r.status), now)) this.activity();
      }
    } else {
      this.reports.replaceAll(id, req.partitions, now);
      this.observedAtMs.set(id, now);
      if (this.notifier.observe(id, req.partitions, now)) this.activity();
    }
    if (req.fsyncPolicy !== "" && req.fsyncPolicy !== known.fsyncPolicy) {
      void this.propose({ ...known, type: "register-broker", fsyncPolicy: req.fsyncPolicy }).catch(() => {});
    }
    return { case: "keepAliveResponse", value: create(KeepAliveResponseSchema, {}) };
  }

  // ---- topic admin ---------------------------------------------------------------------------------------

  private requireTopic(name: string): TopicRecord {
    const t = this.map.topic(name);
    if (!t) throw new WireError(ErrorCode.UNKNOWN_TOPIC, `topic "${name}" does not exist`);
    return t;
  }

  /**
   * May take new replicas (of a new topic, or replacing others): beating on time, and reporting no storage
   * fault (a full disk, a failed WAL or partition log), since it may not be able to store them either.
   */
  private placeable(b: BrokerId): boolean {
    return this.health.isHealthy(b) && !this.storageErrors.has(b);
  }

  private healthyBrokers(): BrokerId[] {
    return this.ring.members().filter((b) => this.placeable(b));
  }

  private async createTopic(req: BodyOf<"createTopic">): Promise<Body> {
    const bad = validateTopicName(req.name);
    if (bad) throw new WireError(ErrorCode.INVALID_ARGUMENT, bad);
    if (this.map.topic(req.name)) throw new WireError(ErrorCode.TOPIC_EXISTS, `topic "${req.name}" already exists`);
    const held = this.notifier.unknownPartitions().filter((u) => u.topic === req.name);
    if (held.length > 0) {
      throw new WireError(
        ErrorCode.TOPIC_EXISTS,
        `brokers still hold data of a topic "${req.name}" this sentinel's map does not know (` +
          held.map((u) => `partition ${u.partition} group ${u.group} on broker ${u.broker}`).join(", ") +
          "): the map may have lost records; pick another name",
      );
    }
    checkTopicConfig(req.config);
    const partitions = req.partitions === 0 ? 1 : req.partitions;
    if (partitions > MAX_PARTITIONS_PER_TOPIC) {
      throw new WireError(ErrorCode.INVALID_ARGUMENT, `partitions must be at most ${MAX_PARTITIONS_PER_TOPIC}`);
    }
    const healthy = this.healthyBrokers();
    const replicas = req.replicas === 0 ? Math.max(1, Math.min(DEFAULT_REPLICAS, healthy.length)) : req.replicas;
    if (replicas > MAX_REPLICATION_FACTOR) {
      throw new WireError(ErrorCode.INVALID_ARGUMENT, `replicas must be at most ${MAX_REPLICATION_FACTOR}`);
    }
    if (replicas > healthy.length) {
      throw new WireError(
        ErrorCode.NOT_ENOUGH_BROKERS,
        `topic "${req.name}" needs ${replicas} replicas but only ${healthy.length} broker(s) can take them (healthy, no storage fault)` +
          (healthy.length > 0 ? ` (${healthy.join(", ")})` : ""),
      );
    }
    const eligible = (b: BrokerId) => this.placeable(b);
    const placement = Array.from({ length: partitions }, (_, i) => this.ring.replicas(partitionKey(req.name, i), replicas, eligible));
    const r = await this.propose({
      type: "create-topic",
      name: req.name,
      replicationFactor: replicas,
      config: { ...req.config },
      placement,
      firstGroup: this.highestReportedGroup() + 1,
    });
    if (!r.ok) throw mapError(r);
    const topic = this.requireTopic(req.name);
    this.deps.log.info("sentinel topic created", { topic: req.name, partitions, replicas, placement });
    this.groups.topicsChanged([req.name]);
    this.notifier.run(performance.now());
    await this.waitConfirmed(topic, CREATE_TOPIC_CONFIRM_TIMEOUT_MS);
    return { case: "createTopicResponse", value: create(CreateTopicResponseSchema, { topic: this.topicMetadata(topic) }) };
  }

  /** Waits (bounded) until every replica confirmed SetTopicRole, so a producer right after create finds it. */
  private async waitConfirmed(topic: TopicRecord, timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline && !this.stopped) {
      const current = this.map.topic(topic.name);
      if (!current || current !== topic) return;
      const done = topic.partitions.every((p) =>
        [...p.replicas, ...p.learners].every((b) => this.notifier.confirmed(b, topic.name, p.partition, p.epoch)),
      );
      if (done) return;
      await Bun.sleep(10);
    }
  }

  /**
   * Merges `set` and `reset` into the topic's config, checks the result as create does, records it, and
   * answers once every replica took it (bounded: a broker that is down gets it when it is back, as
   * the notifier reconciles). The brokers apply it to their partition logs at once (retention runs
   * on its next pass; a new segment size applies from the next roll).
   */
  private async alterTopicConfig(req: BodyOf<"alterTopicConfig">): Promise<Body> {
    const t = this.requireTopic(req.name);
    for (const key of req.reset) {
      if (!TOPIC_CONFIG_KEYS.includes(key)) {
        throw new WireError(ErrorCode.INVALID_ARGUMENT, `unknown topic config "${key}"; known: ${TOPIC_CONFIG_KEYS.join(", ")}`);
      }
      if (key in req.set) throw new WireError(ErrorCode.INVALID_ARGUMENT, `topic config "${key}" is both set and reset`);
    }
    const config: Record<string, string> = { ...t.config, ...req.set };
    for (const key of req.reset) delete config[key];
    checkTopicConfig(config);
    const r = await this.propose({ type: "alter-topic-config", name: req.name, config });
    if (!r.ok) throw mapError(r);
    const topic = this.requireTopic(req.name);
    for (const p of topic.partitions) this.notifier.hurry(topic.name, p.partition, [...p.replicas, ...p.learners]);
    this.notifier.run(performance.now());
    this.deps.log.info("sentinel topic config altered", { topic: req.name, config });
    await this.waitConfirmed(topic, CREATE_TOPIC_CONFIRM_TIMEOUT_MS);
    return { case: "alterTopicConfigResponse", value: create(AlterTopicConfigResponseSchema, { topic: this.topicMetadata(topic) }) };
  }

  private async deleteTopic(req: BodyOf<"deleteTopic">): Promise<Body> {
    const r = await this.propose({ type: "delete-topic", name: req.name });
    if (!r.ok) throw mapError(r);
    const hosts = new Set<BrokerId>();
    for (const p of r.topic?.partitions ?? []) for (const b of [...p.replicas, ...p.learners]) hosts.add(b);
    const groups = (r.topic?.partitions ?? []).map((p) => p.group);
    for (const b of hosts) this.notifier.scheduleRemoval(b, req.name, undefined, groups);
    this.notifier.run(performance.now());
    this.groups.topicsChanged([req.name]);
    this.deps.log.info("sentinel topic deleted", { topic: req.name, brokers: [...hosts] });
    return { case: "deleteTopicResponse", value: create(DeleteTopicResponseSchema, {}) };
  }

  // ---- metadata ------------------------------------------------------------------------------------------

  private partitionMetadata(t: TopicRecord, p: PartitionRecord): PartitionMetadata {
    const members = [...p.replicas, ...p.learners];
    const leader = this.reports.leaderOf(t.name, p.partition, p.group, members, (b) => this.health.isAlive(b));
    const s = leader?.leaderReport?.status;
    return create(PartitionMetadataSchema, {
      topic: t.name,
      partition: p.partition,
      group: BigInt(p.group),
      leaderId: leader?.leaderId ?? 0,
      leaderAddress: leader ? (this.map.broker(leader.leaderId)?.address ?? "") : "",
      term: BigInt(leader?.term ?? 0),
      // Raft's membership when the leader reported it (mid-failover it differs from the map's target),
      // in the map's order where they agree, so replicas[0] stays the preferred leader.
      replicas: s && s.voters.length > 0 ? inMapOrder(s.voters, p.replicas) : [...p.replicas],
      learners: s ? [...s.learners] : [...p.learners],
      commitIndex: s?.commitIndex ?? 0n,
      highWatermark: s?.highWatermark ?? 0n,
      logStartOffset: s?.logStartOffset ?? 0n,
    });
  }

  private topicMetadata(t: TopicRecord): TopicMetadata {
    return create(TopicMetadataSchema, {
      name: t.name,
      partitions: t.partitions.length,
      replicationFactor: t.replicationFactor,
      partitionMetadata: t.partitions.map((p) => this.partitionMetadata(t, p)),
      config: t.config,
      configUnknown: t.configUnknown === true,
    });
  }

  private brokerInfos(ids?: BrokerId[]) {
    const list = ids ?? this.map.allBrokers().filter((b) => !b.left && this.health.isAlive(b.id)).map((b) => b.id);
    return list.map((id) => create(BrokerInfoSchema, { id, address: this.map.broker(id)?.address ?? "" }));
  }

  private sentinelAddresses(): string[] {
    return this.deps.opts.peers.length > 0 ? [...this.deps.opts.peers] : [this.deps.address()];
  }

  private metadata(req: BodyOf<"metadata">): Body {
    const topics = req.topics.length === 0 ? this.map.allTopics() : req.topics.map((n) => this.requireTopic(n));
    return {
      case: "metadataResponse",
      value: create(MetadataResponseSchema, {
        brokers: this.brokerInfos(),
        topics: topics.map((t) => this.topicMetadata(t)),
        sentinels: this.sentinelAddresses(),
      }),
    };
  }

  /** The highest Raft group id any broker reports holding (0 if none). */
  private highestReportedGroup(): number {
    let max = 0;
    for (const b of this.map.allBrokers()) for (const r of this.reports.statusesOf(b.id)) max = Math.max(max, Number(r.status.group));
    return max;
  }

  private clusterStatus(): Body {
    const now = performance.now();
    const brokers = this.map.allBrokers().map((b) =>
      create(BrokerStatusSchema, {
        id: b.id,
        address: b.address,
        health: b.left ? BrokerHealth.LEFT : healthToProto(this.health.health(b.id)),
        lastSeenMsAgo: BigInt(Math.max(0, Math.round(now - (this.health.lastSeenMs(b.id) ?? this.createdAtMs)))),
        fsyncPolicy: b.fsyncPolicy,
        partitions: this.map.partitionsOf(b.id).length,
        leaders: this.health.isAlive(b.id) ? this.reports.leaderCount(b.id) : 0, // a dead broker's last word is stale
        version: b.version,
        storageError: this.storageErrors.get(b.id) ?? "",
      }),
    );
    return {
      case: "clusterStatusResponse",
      value: create(ClusterStatusResponseSchema, {
        brokers,
        topics: this.map.allTopics().map((t) => this.topicMetadata(t)),
        sentinels: this.deps.sentinels().map((x) => create(SentinelStatusSchema, x)),
        warnings: this.notifier
          .unknownPartitions()
          .map(
            (u) =>
              `broker ${u.broker} holds ${u.topic}/${u.partition} (group ${u.group}), which this sentinel's map never recorded: ` +
              "its data is kept, but the topic is not served; the map may have lost records",
          ),
        changes: this.failover.inProgress().map((c) =>
          create(ReplicaChangeSchema, {
            topic: c.topic,
            partition: c.partition,
            kind: c.kind,
            fromBroker: c.dead,
            toBroker: c.replacement,
            step: c.step,
            runningMs: BigInt(c.runningMs),
          }),
        ),
      }),
    };
  }

  // ---- leader discovery ----------------------------------------------------------------------------------

  private async getTopicLeader(req: BodyOf<"getTopicLeader">): Promise<Body> {
    const t = this.requireTopic(req.topic);
    let p = t.partitions[req.partition];
    if (!p) throw new WireError(ErrorCode.UNKNOWN_PARTITION, `topic "${req.topic}" has no partition ${req.partition}`);
    if (req.unreachableBrokers.length > 0) {
      await this.verifyUnreachable(t.name, p, req.unreachableBrokers.slice(0, MAX_UNREACHABLE_REPORTED));
      p = this.map.partition(t.name, req.partition) ?? p;
    }
    let md = this.partitionMetadata(t, p);
    if (md.leaderId === 0) {
      // An election is under way (the old leader just died): answer as soon as the survivors report a
      // winner rather than send the client into its backoff. Bounded; probes refresh what they report.
      const deadline = performance.now() + LEADER_WAIT_MS;
      while (md.leaderId === 0 && performance.now() < deadline && !this.stopped) {
        await Promise.all([Bun.sleep(LEADER_REPROBE_MS), this.probeAll(t.name, p)]);
        p = this.map.partition(t.name, req.partition);
        if (!p) throw new WireError(ErrorCode.UNKNOWN_TOPIC, `topic "${req.topic}" was deleted`);
        md = this.partitionMetadata(t, p);
      }
    }
    const replicas = this.brokerInfos([...new Set([...md.replicas, ...md.learners, ...p.replicas])]);
    if (md.leaderId === 0) {
      throw new WireError(ErrorCode.LEADER_NOT_AVAILABLE, `no leader known for ${t.name}/${p.partition} yet (election in progress)`);
    }
    return { case: "getTopicLeaderResponse", value: create(GetTopicLeaderResponseSchema, { partition: md, replicas }) };
  }

  /**
   * A client says it cannot reach some brokers. Never act on its word: probe every live replica of the
   * partition ourselves (connect + GetBrokerTopicRole). A replica the client named that fails our probe
   * is marked down (failover follows); the others' answers refresh who leads right now.
   */
  private async verifyUnreachable(topic: string, p: PartitionRecord, reported: number[]): Promise<void> {
    const members = [...new Set([...p.replicas, ...p.learners])];
    const named = new Set(reported.filter((b) => members.includes(b)));
    if (named.size === 0) return;
    await Promise.all(
      members
        .filter((b) => this.health.isAlive(b))
        .map(async (b) => {
          const ok = await this.probe(b, topic, p.partition);
          if (!ok && named.has(b)) {
            const t = this.health.markDown(b, performance.now());
            if (t) {
              this.deps.log.warn("sentinel broker down: a client reported it unreachable and the probe agrees", { broker: b, topic });
              this.onTransition(t);
            }
          }
        }),
    );
  }

  /** Probes every live member of the partition; resolves when all answered or failed. */
  private async probeAll(topic: string, p: PartitionRecord): Promise<void> {
    const members = [...new Set([...p.replicas, ...p.learners])].filter((b) => this.health.isAlive(b));
    await Promise.all(members.map((b) => this.probe(b, topic, p.partition)));
  }

  private probe(broker: BrokerId, topic: string, partition: number): Promise<boolean> {
    const running = this.probes.get(broker);
    if (running) return running;
    const address = this.map.broker(broker)?.address;
    if (!address) return Promise.resolve(false);
    const client = new WireClient(address, {
      connectTimeoutMs: PROBE_TIMEOUT_MS,
      requestTimeoutMs: PROBE_TIMEOUT_MS,
      maxFrameBytes: this.deps.opts.maxFrameBytes,
    });
    const req = create(GetBrokerTopicRoleRequestSchema, { topic, partition });
    const result = client
      .call({ case: "getBrokerTopicRole", value: req }, { timeoutMs: PROBE_TIMEOUT_MS })
      .then((res) => {
        try {
          const r = expectCase(res, "getBrokerTopicRoleResponse");
          if (r.status && r.status.topic === topic) this.reports.updateOne(broker, r.status, performance.now());
        } catch (e) {
          // An error answer still proves the broker is up and serving.
          if (!(e instanceof WireError) || e.transport !== undefined) return false;
        }
        return true;
      })
      .catch(() => false)
      .finally(() => {
        client.close();
        this.probes.delete(broker);
      });
    this.probes.set(broker, result);
    return result;
  }

  // ---- producers and groups ------------------------------------------------------------------------------

  private async initProducer(): Promise<Body> {
    // Normally the map's own counter is ahead of every id in use; after the map lost records it is not,
    // and an id some partition still remembers would turn a new producer's batches into "duplicates".
    await this.producerIdsHeard();
    const r = await this.propose({ type: "next-producer-id", atLeast: this.highestProducerIdSeen + 1 });
    if (!r.ok || r.producerId === undefined) throw new WireError(ErrorCode.UNKNOWN, "could not allocate a producer id");
    return {
      case: "initProducerResponse",
      value: create(InitProducerResponseSchema, { producerId: BigInt(r.producerId), producerEpoch: 0 }),
    };
  }

  /**
   * Waits, early in a leadership only, until highestProducerIdSeen covers every broker: each broker in the
   * map has beaten since this sentinel began leading, and brokers a wiped map no longer lists had the time
   * to register again. Bounded, so a broker that is down delays InitProducer by a few intervals at most.
   */
  private async producerIdsHeard(): Promise<void> {
    const beat = this.deps.opts.keepAliveMs;
    for (;;) {
      const elapsed = performance.now() - this.createdAtMs;
      if (elapsed >= PRODUCER_IDS_MAX_BEATS * beat || this.stopped) return;
      const allHeard = this.map.allBrokers().every((b) => b.left || this.producerIdsFrom.has(b.id));
      if (allHeard && elapsed >= PRODUCER_IDS_MIN_BEATS * beat) return;
      await Bun.sleep(10);
    }
  }

  private joinGroup(req: BodyOf<"joinGroup">): Body {
    for (const t of req.topics) this.requireTopic(t);
    const r = this.groups.join(req.groupId, req.memberId, req.topics, req.sessionTimeoutMs, performance.now());
    if (!r.ok) throw groupError(r.code, r.message);
    const v = r.value;
    return {
      case: "joinGroupResponse",
      value: create(JoinGroupResponseSchema, {
        memberId: v.memberId,
        generation: v.generation,
        assignment: v.assignment.map((a) => create(TopicPartitionsSchema, { topic: a.topic, partitions: a.partitions })),
        heartbeatIntervalMs: v.heartbeatIntervalMs,
      }),
    };
  }
}

function inMapOrder(reported: number[], mapOrder: BrokerId[]): number[] {
  const set = new Set(reported);
  return [...mapOrder.filter((b) => set.has(b)), ...reported.filter((b) => !mapOrder.includes(b))];
}

function healthToProto(h: Health | undefined): BrokerHealth {
  switch (h) {
    case "healthy":
      return BrokerHealth.HEALTHY;
    case "suspicious":
      return BrokerHealth.SUSPICIOUS;
    case "down":
      return BrokerHealth.DOWN;
    case "left":
      return BrokerHealth.LEFT;
    default:
      // Known from the map but not heard from since this sentinel started.
      return BrokerHealth.HEALTH_UNSPECIFIED;
  }
}

/** A config the brokers can apply (create and alter check alike), or INVALID_ARGUMENT naming the key. */
function checkTopicConfig(config: Record<string, string>): void {
  try {
    parseTopicConfig(config);
  } catch (e) {
    throw new WireError(ErrorCode.INVALID_ARGUMENT, (e as Error).message);
  }
}

/**
 * The config a lost topic is adopted with: what its replicas report applying. An empty one is the defaults,
 * or a broker too old to report one, so it stays unknown (SetTopicRole then says keep_config); one that no
 * longer parses stays unknown too, rather than be sent to every replica.
 */
function adoptableConfig(config: Record<string, string> | undefined): Record<string, string> | undefined {
  if (!config || Object.keys(config).length === 0) return undefined;
  try {
    parseTopicConfig(config);
  } catch {
    return undefined;
  }
  return { ...config };
}

function mapError(r: Extract<MapResult, { ok: false }>): WireError {
  const code =
    r.code === "TOPIC_EXISTS"
      ? ErrorCode.TOPIC_EXISTS
      : r.code === "UNKNOWN_TOPIC"
        ? ErrorCode.UNKNOWN_TOPIC
        : r.code === "UNKNOWN_PARTITION"
          ? ErrorCode.UNKNOWN_PARTITION
          : ErrorCode.INVALID_ARGUMENT;
  return new WireError(code, r.message);
}

function groupError(code: GroupErrorCode, message: string): WireError {
  const map: Record<GroupErrorCode, ErrorCode> = {
    UNKNOWN_GROUP: ErrorCode.UNKNOWN_GROUP,
    UNKNOWN_MEMBER: ErrorCode.UNKNOWN_MEMBER,
    REBALANCE_IN_PROGRESS: ErrorCode.REBALANCE_IN_PROGRESS,
    ILLEGAL_GENERATION: ErrorCode.ILLEGAL_GENERATION,
    INVALID_ARGUMENT: ErrorCode.INVALID_ARGUMENT,
  };
  return new WireError(map[code], message);
}
