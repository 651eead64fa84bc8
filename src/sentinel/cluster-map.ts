// The cluster map as a deterministic state machine: the same commands applied in the same order give the
// same map on every sentinel, so commands can be replicated through Raft and replayed after a restart.
// Anything that is not deterministic (health, time, the hash ring's view of who is healthy) is decided
// by the leader BEFORE proposing and carried inside the command (e.g. a topic's placement).

import type { BrokerId } from "./ring";

export interface BrokerRecord {
  id: BrokerId;
  address: string;
  fsyncPolicy: string;
  version: string;
  capacity: number;
  left: boolean; // unregistered gracefully; kept so its replicas can still be named and replaced
}

export interface PartitionRecord {
  partition: number;
  group: number; // Raft group id, unique in the cluster, never reused
  replicas: BrokerId[]; // voters the sentinel wants; replicas[0] is the leader hint for a new partition
  learners: BrokerId[]; // replicas catching up during a replacement
  epoch: number; // map epoch of the last change to this partition (SetTopicRole.map_epoch)
}

export interface TopicRecord {
  name: string;
  replicationFactor: number;
  config: Record<string, string>;
  /** Adopted after the map lost its records: brokers keep their own config until an alter sets one. */
  configUnknown?: boolean;
  partitions: PartitionRecord[];
  createdEpoch: number;
}

export type MapCommand =
  | { type: "register-broker"; id: BrokerId; address: string; fsyncPolicy: string; version: string; capacity: number }
  | { type: "unregister-broker"; id: BrokerId }
  | {
      type: "create-topic";
      name: string;
      replicationFactor: number;
      config: Record<string, string>;
      placement: BrokerId[][]; // one replica list per partition, chosen by the leader on the ring
      // Group ids start no lower than this: brokers may hold groups this map never recorded (it lost
      // records), and a new partition must never share a group id with data that already exists.
      firstGroup?: number;
    }
  | { type: "delete-topic"; name: string }
  // The topic's whole new config (the sentinel merged and checked it); every partition's epoch moves, so
  // each replica is sent SetTopicRole with it again.
  | { type: "alter-topic-config"; name: string; config: Record<string, string> }
  | {
      // A topic the map lost (a damaged or wiped store) but brokers still hold, taken back as they
      // report it: its groups are ones this map never handed out, and become handed out.
      type: "adopt-topic";
      name: string;
      partitions: { group: number; replicas: BrokerId[] }[]; // by partition index
      config?: Record<string, string>; // as the replicas reported it; absent: unknown (they keep theirs)
    }
  | {
      type: "set-replicas";
      topic: string;
      partition: number;
      replicas: BrokerId[];
      learners: BrokerId[];
      expectEpoch: number; // refused when the partition changed since: no lost updates between planners
    }
  | { type: "next-producer-id"; atLeast?: number } // atLeast: above every id brokers have recorded
  | { type: "set-cluster-id"; clusterId: string }; // once, by the first leader: the same id on every sentinel

export type MapErrorCode = "TOPIC_EXISTS" | "UNKNOWN_TOPIC" | "UNKNOWN_PARTITION" | "INVALID_ARGUMENT" | "CONFLICT";

export type MapResult =
  | { ok: true; epoch: number; topic?: TopicRecord; producerId?: number }
  | { ok: false; epoch: number; code: MapErrorCode; message: string };

export interface MapSnapshot {
  epoch: number;
  clusterId?: string;
  nextGroup: number;
  /** Group id ranges [from, to) skipped by create-topic's firstGroup: below nextGroup, never handed out. */
  skippedGroups?: [number, number][];
  nextProducerId: number;
  brokers: BrokerRecord[];
  topics: TopicRecord[];
}

// Limits: a command from a buggy or hostile caller cannot make the map grow without bound.
export const MAX_TOPIC_NAME_CHARS = 249;
export const MAX_PARTITIONS_PER_TOPIC = 10_000;
export const MAX_REPLICATION_FACTOR = 16;
export const MAX_TOPICS = 100_000;
export const MAX_CONFIG_ENTRIES = 64;
const TOPIC_NAME = /^[A-Za-z0-9._-]+$/;

export function validateTopicName(name: string): string | undefined {
  if (name.length === 0) return "topic name is empty";
  if (name.length > MAX_TOPIC_NAME_CHARS) return `topic name longer than ${MAX_TOPIC_NAME_CHARS} characters`;
  if (!TOPIC_NAME.test(name)) return `topic name "${name}" may only hold letters, digits, '.', '_' and '-'`;
  if (name === "." || name === "..") return `topic name "${name}" is reserved`;
  return undefined;
}

export class ClusterMap {
  private epoch = 0;
  private cluster = "";
  private nextGroup = 1;
  private skippedGroups: [number, number][] = [];
  private nextProducerId = 1;
  private readonly brokers = new Map<BrokerId, BrokerRecord>();
  private readonly topics = new Map<string, TopicRecord>();

  get version(): number {
    return this.epoch;
  }

  /**
   * True if this map gave `group` to some partition (which may since have been deleted or moved). A group
   * it never handed out, held by a broker, means the map lost the records of it: that data is not stale.
   */
  handedOut(group: number): boolean {
    if (!(group >= 1 && group < this.nextGroup)) return false;
    return !this.skippedGroups.some(([from, to]) => group >= from && group < to);
  }

  /** Empty until the first leader sets it. */
  get clusterId(): string {
    return this.cluster;
  }

  broker(id: BrokerId): BrokerRecord | undefined {
    return this.brokers.get(id);
  }

  allBrokers(): BrokerRecord[] {
    return [...this.brokers.values()].sort((a, b) => a.id - b.id);
  }

  topic(name: string): TopicRecord | undefined {
    return this.topics.get(name);
  }

  allTopics(): TopicRecord[] {
    return [...this.topics.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  partition(topic: string, partition: number): PartitionRecord | undefined {
    return this.topics.get(topic)?.partitions[partition];
  }

  /** Every partition whose voters or learners include `broker`. */
  partitionsOf(broker: BrokerId): { topic: TopicRecord; partition: PartitionRecord }[] {
    const out: { topic: TopicRecord; partition: PartitionRecord }[] = [];
    for (const t of this.allTopics()) {
      for (const p of t.partitions) {
        if (p.replicas.includes(broker) || p.learners.includes(broker)) out.push({ topic: t, partition: p });
      }
    }
    return out;
  }

  apply(command: MapCommand): MapResult {
    const epoch = this.epoch + 1;
    const fail = (code: MapErrorCode, message: string): MapResult => ({ ok: false, epoch: this.epoch, code, message });
    switch (command.type) {
      case "register-broker": {
        if (!(command.id > 0)) return fail("INVALID_ARGUMENT", "broker id must be positive");
        this.brokers.set(command.id, {
          id: command.id,
          address: command.address,
          fsyncPolicy: command.fsyncPolicy,
          version: command.version,
          capacity: command.capacity,
          left: false,
        });
        break;
      }
      case "unregister-broker": {
        const b = this.brokers.get(command.id);
        if (!b) return fail("INVALID_ARGUMENT", `broker ${command.id} is not registered`);
        b.left = true;
        break;
      }
      case "create-topic": {
        const bad = validateTopicName(command.name);
        if (bad) return fail("INVALID_ARGUMENT", bad);
        if (this.topics.has(command.name)) return fail("TOPIC_EXISTS", `topic "${command.name}" already exists`);
        if (this.topics.size >= MAX_TOPICS) return fail("INVALID_ARGUMENT", `at most ${MAX_TOPICS} topics`);
        const n = command.placement.length;
        if (n < 1 || n > MAX_PARTITIONS_PER_TOPIC) {
          return fail("INVALID_ARGUMENT", `partitions must be in [1, ${MAX_PARTITIONS_PER_TOPIC}]`);
        }
        const rf = command.replicationFactor;
        if (!(rf >= 1 && rf <= MAX_REPLICATION_FACTOR)) {
          return fail("INVALID_ARGUMENT", `replicas must be in [1, ${MAX_REPLICATION_FACTOR}]`);
        }
        if (Object.keys(command.config).length > MAX_CONFIG_ENTRIES) {
          return fail("INVALID_ARGUMENT", `at most ${MAX_CONFIG_ENTRIES} config entries`);
        }
        for (const set of command.placement) {
          const problem = this.checkReplicaSet(set, []);
          if (problem) return fail("INVALID_ARGUMENT", problem);
          if (set.length !== rf) return fail("INVALID_ARGUMENT", `placement has ${set.length} replicas, want ${rf}`);
        }
        if (command.firstGroup !== undefined && command.firstGroup > this.nextGroup) {
          this.skippedGroups.push([this.nextGroup, command.firstGroup]);
          this.nextGroup = command.firstGroup;
        }
        const topic: TopicRecord = {
          name: command.name,
          replicationFactor: rf,
          config: { ...command.config },
          partitions: command.placement.map((set, i) => ({
            partition: i,
            group: this.nextGroup++,
            replicas: [...set],
            learners: [],
            epoch,
          })),
          createdEpoch: epoch,
        };
        this.topics.set(command.name, topic);
        this.epoch = epoch;
        return { ok: true, epoch, topic };
      }
      case "delete-topic": {
        const t = this.topics.get(command.name);
        if (!t) return fail("UNKNOWN_TOPIC", `topic "${command.name}" does not exist`);
        this.topics.delete(command.name);
        this.epoch = epoch;
        return { ok: true, epoch, topic: t };
      }
      case "alter-topic-config": {
        const t = this.topics.get(command.name);
        if (!t) return fail("UNKNOWN_TOPIC", `topic "${command.name}" does not exist`);
        if (Object.keys(command.config).length > MAX_CONFIG_ENTRIES) {
          return fail("INVALID_ARGUMENT", `at most ${MAX_CONFIG_ENTRIES} config entries`);
        }
        t.config = { ...command.config };
        delete t.configUnknown;
        for (const p of t.partitions) p.epoch = epoch;
        this.epoch = epoch;
        return { ok: true, epoch, topic: t };
      }
      case "set-replicas": {
        const t = this.topics.get(command.topic);
        if (!t) return fail("UNKNOWN_TOPIC", `topic "${command.topic}" does not exist`);
        const p = t.partitions[command.partition];
        if (!p) return fail("UNKNOWN_PARTITION", `topic "${command.topic}" has no partition ${command.partition}`);
        if (p.epoch !== command.expectEpoch) {
          return fail("CONFLICT", `partition changed at epoch ${p.epoch}, expected ${command.expectEpoch}`);
        }
        const problem = this.checkReplicaSet(command.replicas, command.learners);
        if (problem) return fail("INVALID_ARGUMENT", problem);
        p.replicas = [...command.replicas];
        p.learners = [...command.learners];
        p.epoch = epoch;
        break;
      }
      case "adopt-topic": {
        const bad = validateTopicName(command.name);
        if (bad) return fail("INVALID_ARGUMENT", bad);
        if (this.topics.has(command.name)) return fail("TOPIC_EXISTS", `topic "${command.name}" already exists`);
        const n = command.partitions.length;
        if (n < 1 || n > MAX_PARTITIONS_PER_TOPIC) return fail("INVALID_ARGUMENT", `partitions must be in [1, ${MAX_PARTITIONS_PER_TOPIC}]`);
        const groups = command.partitions.map((p) => p.group);
        if (new Set(groups).size !== n) return fail("INVALID_ARGUMENT", "an adopted topic repeats a group");
        for (const p of command.partitions) {
          if (!Number.isSafeInteger(p.group) || p.group < 1) return fail("INVALID_ARGUMENT", `bad group ${p.group}`);
          if (this.handedOut(p.group)) return fail("CONFLICT", `group ${p.group} was handed out by this map: not a lost topic`);
          const problem = this.checkReplicaSet(p.replicas, []);
          if (problem) return fail("INVALID_ARGUMENT", problem);
        }
        for (const g of [...groups].sort((a, b) => a - b)) this.claimGroup(g);
        this.topics.set(command.name, {
          name: command.name,
          replicationFactor: Math.max(...command.partitions.map((p) => p.replicas.length)),
          config: { ...command.config },
          ...(command.config === undefined ? { configUnknown: true } : {}),
          partitions: command.partitions.map((p, i) => ({ partition: i, group: p.group, replicas: [...p.replicas], learners: [], epoch })),
          createdEpoch: epoch,
        });
        this.epoch = epoch;
        return { ok: true, epoch, topic: this.topics.get(command.name) };
      }
      case "set-cluster-id": {
        if (this.cluster !== "") return { ok: true, epoch: this.epoch }; // first one wins, everywhere
        if (command.clusterId.length === 0 || command.clusterId.length > 64) return fail("INVALID_ARGUMENT", "bad cluster id");
        this.cluster = command.clusterId;
        break;
      }
      case "next-producer-id": {
        if (command.atLeast !== undefined && command.atLeast > this.nextProducerId) this.nextProducerId = command.atLeast;
        const producerId = this.nextProducerId++;
        this.epoch = epoch;
        return { ok: true, epoch, producerId };
      }
      default: {
        const never: never = command;
        throw new Error(`unknown map command ${JSON.stringify(never)}`);
      }
    }
    this.epoch = epoch;
    return { ok: true, epoch };
  }

  snapshot(): MapSnapshot {
    return structuredClone({
      epoch: this.epoch,
      clusterId: this.cluster,
      nextGroup: this.nextGroup,
      skippedGroups: this.skippedGroups,
      nextProducerId: this.nextProducerId,
      brokers: this.allBrokers(),
      topics: this.allTopics(),
    });
  }

  restore(s: MapSnapshot): void {
    if (!(s.epoch >= 0 && s.nextGroup >= 1 && s.nextProducerId >= 1)) throw new Error("corrupt map snapshot");
    this.epoch = s.epoch;
    this.cluster = s.clusterId ?? "";
    this.nextGroup = s.nextGroup;
    this.skippedGroups = structuredClone(s.skippedGroups ?? []);
    this.nextProducerId = s.nextProducerId;
    this.brokers.clear();
    this.topics.clear();
    for (const b of structuredClone(s.brokers)) this.brokers.set(b.id, b);
    for (const t of structuredClone(s.topics)) {
      for (const p of t.partitions) {
        if (p.group >= this.nextGroup) throw new Error(`corrupt map snapshot: group ${p.group} >= next ${this.nextGroup}`);
      }
      this.topics.set(t.name, t);
    }
  }

  /** Marks a group this map never handed out (at or past nextGroup, or in a skipped range) as handed out. */
  private claimGroup(g: number): void {
    if (g >= this.nextGroup) {
      if (g > this.nextGroup) this.skippedGroups.push([this.nextGroup, g]);
      this.nextGroup = g + 1;
      return;
    }
    const i = this.skippedGroups.findIndex(([from, to]) => g >= from && g < to);
    if (i < 0) return;
    const [from, to] = this.skippedGroups[i]!;
    const rest: [number, number][] = [];
    if (g > from) rest.push([from, g]);
    if (g + 1 < to) rest.push([g + 1, to]);
    this.skippedGroups.splice(i, 1, ...rest);
  }

  private checkReplicaSet(replicas: BrokerId[], learners: BrokerId[]): string | undefined {
    if (replicas.length < 1) return "a partition needs at least one replica";
    if (replicas.length + learners.length > MAX_REPLICATION_FACTOR + 1) return "too many replicas";
    const all = [...replicas, ...learners];
    if (new Set(all).size !== all.length) return `replica set ${JSON.stringify(all)} repeats a broker`;
    for (const b of all) if (!this.brokers.has(b)) return `broker ${b} is not registered`;
    return undefined;
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Commands travel as JSON bytes: small, rare, and readable in a hex dump of the log. */
export function encodeCommand(command: MapCommand): Uint8Array {
  return encoder.encode(JSON.stringify(command));
}

export function decodeCommand(bytes: Uint8Array): MapCommand {
  const value: unknown = JSON.parse(decoder.decode(bytes));
  if (!value || typeof value !== "object" || typeof (value as { type?: unknown }).type !== "string") {
    throw new Error("map command without a type");
  }
  return value as MapCommand;
}
