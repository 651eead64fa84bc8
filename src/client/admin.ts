import { create } from "@bufbuild/protobuf";
import {
  AlterTopicConfigRequestSchema,
  BrokerHealth,
  ClusterStatusRequestSchema,
  CreateTopicRequestSchema,
  DeleteTopicRequestSchema,
  DescribeTopicRequestSchema,
  ListTopicsRequestSchema,
  MetadataRequestSchema,
  type PartitionMetadata,
  type TopicMetadata,
} from "../proto/goulette_pb";
import { SentinelClient } from "./sentinel-client";
import { WireTransport, type Transport } from "./transport";

export interface ClientOptions {
  /** Sentinel addresses (host:port); any one of them will do, the leader is found from there. */
  sentinels: string[];
  /** Give up on a sentinel request after this long (default 3000). */
  sentinelTimeoutMs?: number;
  /** For tests: the network to use. Defaults to real TCP connections. */
  transport?: Transport;
}

export interface PartitionInfo {
  topic: string;
  partition: number;
  leader: number; // broker id, 0 when none is known
  leaderAddress: string;
  term: number;
  replicas: number[];
  learners: number[];
  commitIndex: number;
  highWatermark: number;
  logStartOffset: number;
}

export interface TopicInfo {
  name: string;
  partitions: number;
  replicationFactor: number;
  partitionInfo: PartitionInfo[];
  config: Record<string, string>;
  /** The sentinel's map lost this topic's config (it was taken back from what brokers held). */
  configUnknown: boolean;
}

export interface BrokerStatusInfo {
  id: number;
  address: string;
  health: string; // healthy | suspicious | down | left | unknown
  lastSeenMsAgo: number;
  fsyncPolicy: string;
  /** Why the broker can no longer store writes (a full disk, an I/O error), or "" while all is well. */
  storageError: string;
  partitions: number;
  leaders: number;
  version: string;
}

export interface ClusterStatus {
  brokers: BrokerStatusInfo[];
  topics: TopicInfo[];
  sentinels: { id: number; address: string; leader: boolean }[];
  /** What an operator must look at, one sentence each (empty while all is well). */
  warnings: string[];
  /** Replica replacements and moves the sentinel is driving now, oldest first. */
  changes: ReplicaChangeInfo[];
}

export interface ReplicaChangeInfo {
  topic: string;
  partition: number;
  /** replace: the replica's broker is down or the replica left its group; move: back to the ring's placement. */
  kind: string;
  fromBroker: number;
  toBroker: number;
  step: string;
  runningMs: number;
}

export interface ClusterMetadata {
  brokers: { id: number; address: string }[];
  topics: TopicInfo[];
  sentinels: string[];
}

export function partitionInfo(p: PartitionMetadata): PartitionInfo {
  return {
    topic: p.topic,
    partition: p.partition,
    leader: p.leaderId,
    leaderAddress: p.leaderAddress,
    term: Number(p.term),
    replicas: [...p.replicas],
    learners: [...p.learners],
    commitIndex: Number(p.commitIndex),
    highWatermark: Number(p.highWatermark),
    logStartOffset: Number(p.logStartOffset),
  };
}

export function topicInfo(t: TopicMetadata): TopicInfo {
  return {
    name: t.name,
    partitions: t.partitions,
    replicationFactor: t.replicationFactor,
    partitionInfo: t.partitionMetadata.map(partitionInfo).sort((a, b) => a.partition - b.partition),
    config: { ...t.config },
    configUnknown: t.configUnknown,
  };
}

export function healthName(h: BrokerHealth): string {
  switch (h) {
    case BrokerHealth.HEALTHY: return "healthy";
    case BrokerHealth.SUSPICIOUS: return "suspicious";
    case BrokerHealth.DOWN: return "down";
    case BrokerHealth.LEFT: return "left";
    default: return "unknown";
  }
}

/**
 * A sentinel answers CreateTopic once every replica confirmed its role, waiting up to 3 s for that (a
 * topic of 1,000 partitions takes seconds: each broker creates each partition durably). The request
 * gets that long on top of the usual timeout, or a slow success would look like an unreachable sentinel.
 */
export const CREATE_TOPIC_EXTRA_MS = 5_000;

/** Topic administration and cluster status, answered by the sentinel. */
export class Admin {
  readonly sentinel: SentinelClient;
  private readonly transport: Transport;
  private readonly ownsTransport: boolean;

  constructor(opts: ClientOptions) {
    this.ownsTransport = opts.transport === undefined;
    this.transport = opts.transport ?? new WireTransport();
    this.sentinel = new SentinelClient(opts.sentinels, this.transport, { timeoutMs: opts.sentinelTimeoutMs });
  }

  async createTopic(name: string, opts: { partitions?: number; replicas?: number; config?: Record<string, string> } = {}): Promise<TopicInfo> {
    const partitions = opts.partitions ?? 1;
    const replicas = opts.replicas ?? 3;
    const r = await this.sentinel.request(
      { case: "createTopic", value: create(CreateTopicRequestSchema, { name, partitions, replicas, config: opts.config ?? {} }) },
      "createTopicResponse",
      this.sentinel.timeoutMs + CREATE_TOPIC_EXTRA_MS,
    );
    if (r.topic) return topicInfo(r.topic);
    return { name, partitions, replicationFactor: replicas, partitionInfo: [], config: opts.config ?? {}, configUnknown: false };
  }

  /**
   * Changes a topic's config: `set` adds or replaces keys (Kafka's names: retention.ms, retention.bytes,
   * segment.bytes, segment.ms), `reset` removes keys so the defaults apply. Resolves once the replicas took
   * it (or after a bounded wait: a broker that is down gets it when it is back).
   */
  async alterTopicConfig(name: string, change: { set?: Record<string, string>; reset?: string[] }): Promise<TopicInfo> {
    const r = await this.sentinel.request(
      { case: "alterTopicConfig", value: create(AlterTopicConfigRequestSchema, { name, set: change.set ?? {}, reset: change.reset ?? [] }) },
      "alterTopicConfigResponse",
      this.sentinel.timeoutMs + CREATE_TOPIC_EXTRA_MS,
    );
    if (!r.topic) throw new Error(`sentinel described no topic for ${name}`);
    return topicInfo(r.topic);
  }

  async deleteTopic(name: string): Promise<void> {
    await this.sentinel.request({ case: "deleteTopic", value: create(DeleteTopicRequestSchema, { name }) }, "deleteTopicResponse");
  }

  async listTopics(): Promise<TopicInfo[]> {
    const r = await this.sentinel.request({ case: "listTopics", value: create(ListTopicsRequestSchema, {}) }, "listTopicsResponse");
    return r.topics.map(topicInfo).sort((a, b) => a.name.localeCompare(b.name));
  }

  async describeTopic(name: string): Promise<TopicInfo> {
    const r = await this.sentinel.request({ case: "describeTopic", value: create(DescribeTopicRequestSchema, { name }) }, "describeTopicResponse");
    if (!r.topic) throw new Error(`sentinel described no topic for ${name}`);
    return topicInfo(r.topic);
  }

  async metadata(topics: string[] = []): Promise<ClusterMetadata> {
    const r = await this.sentinel.request({ case: "metadata", value: create(MetadataRequestSchema, { topics }) }, "metadataResponse");
    return {
      brokers: r.brokers.map((b) => ({ id: b.id, address: b.address })),
      topics: r.topics.map(topicInfo),
      sentinels: [...r.sentinels],
    };
  }

  async clusterStatus(): Promise<ClusterStatus> {
    const r = await this.sentinel.request({ case: "clusterStatus", value: create(ClusterStatusRequestSchema, {}) }, "clusterStatusResponse");
    return {
      brokers: r.brokers
        .map((b) => ({
          id: b.id,
          address: b.address,
          health: healthName(b.health),
          lastSeenMsAgo: Number(b.lastSeenMsAgo),
          fsyncPolicy: b.fsyncPolicy,
          partitions: b.partitions,
          leaders: b.leaders,
          version: b.version,
          storageError: b.storageError,
        }))
        .sort((a, b) => a.id - b.id),
      topics: r.topics.map(topicInfo).sort((a, b) => a.name.localeCompare(b.name)),
      sentinels: r.sentinels.map((s) => ({ id: s.id, address: s.address, leader: s.leader })),
      warnings: [...r.warnings],
      changes: r.changes.map((c) => ({
        topic: c.topic,
        partition: c.partition,
        kind: c.kind,
        fromBroker: c.fromBroker,
        toBroker: c.toBroker,
        step: c.step,
        runningMs: Number(c.runningMs),
      })),
    };
  }

  async close(): Promise<void> {
    if (this.ownsTransport) this.transport.close();
  }
}
