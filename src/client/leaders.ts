import { create } from "@bufbuild/protobuf";
import { DescribeTopicRequestSchema, ErrorCode, GetTopicLeaderRequestSchema } from "../proto/goulette_pb";
import { WireError } from "./errors";
import type { SentinelClient } from "./sentinel-client";

export interface BrokerRef {
  id: number;
  address: string;
}

/** Where to send requests for one partition. */
export interface PartitionRoute {
  leader: BrokerRef | undefined;
  replicas: BrokerRef[]; // every replica the sentinel knows, the leader included
  highWatermark: number;
}

const key = (topic: string, partition: number) => `${topic}/${partition}`;

/**
 * Leaders and partition counts learnt from the sentinel, cached until a broker says otherwise.
 * Concurrent lookups of one partition share one request.
 */
export class LeaderDirectory {
  private readonly routes = new Map<string, PartitionRoute>();
  private readonly pending = new Map<string, Promise<PartitionRoute>>();
  private readonly counts = new Map<string, number>();
  private readonly countPending = new Map<string, Promise<number>>();

  constructor(private readonly sentinel: SentinelClient) {}

  /** The partition count if already learnt (no request). */
  knownPartitionCount(topic: string): number | undefined {
    return this.counts.get(topic);
  }

  async partitionCount(topic: string, refresh = false): Promise<number> {
    const known = this.counts.get(topic);
    if (known !== undefined && !refresh) return known;
    let p = this.countPending.get(topic);
    if (!p) {
      p = this.sentinel
        .request({ case: "describeTopic", value: create(DescribeTopicRequestSchema, { name: topic }) }, "describeTopicResponse")
        .then((r) => {
          const n = r.topic?.partitions ?? 0;
          if (n < 1) throw new WireError(ErrorCode.UNKNOWN_TOPIC, `topic ${topic} has no partitions`);
          this.counts.set(topic, n);
          return n;
        })
        .finally(() => this.countPending.delete(topic));
      this.countPending.set(topic, p);
    }
    return p;
  }

  cached(topic: string, partition: number): PartitionRoute | undefined {
    return this.routes.get(key(topic, partition));
  }

  /**
   * Asks the sentinel who leads `topic/partition`, naming brokers we could not reach so it can probe them.
   * Throws LEADER_NOT_AVAILABLE while an election is under way.
   */
  async lookup(topic: string, partition: number, unreachable: number[] = []): Promise<PartitionRoute> {
    const k = key(topic, partition);
    let p = this.pending.get(k);
    if (!p) {
      p = this.sentinel
        .request(
          {
            case: "getTopicLeader",
            value: create(GetTopicLeaderRequestSchema, { topic, partition, unreachableBrokers: [...new Set(unreachable)] }),
          },
          "getTopicLeaderResponse",
        )
        .then((r) => {
          const meta = r.partition;
          const replicas = r.replicas.map((b) => ({ id: b.id, address: b.address }));
          let leader: BrokerRef | undefined;
          if (meta && meta.leaderId !== 0) {
            const address = meta.leaderAddress || replicas.find((b) => b.id === meta.leaderId)?.address || "";
            if (address) leader = { id: meta.leaderId, address };
          }
          const route: PartitionRoute = { leader, replicas, highWatermark: Number(meta?.highWatermark ?? 0n) };
          this.routes.set(k, route);
          return route;
        })
        .finally(() => this.pending.delete(k));
      this.pending.set(k, p);
    }
    const route = await p;
    if (!route.leader) throw new WireError(ErrorCode.LEADER_NOT_AVAILABLE, `no leader for ${k} yet`);
    return route;
  }

  /** A broker's NOT_LEADER answer named the leader: trust it until it fails too. */
  setLeader(topic: string, partition: number, leader: BrokerRef): void {
    const k = key(topic, partition);
    const route = this.routes.get(k) ?? { leader: undefined, replicas: [], highWatermark: 0 };
    this.routes.set(k, { ...route, leader });
  }

  invalidate(topic: string, partition: number): void {
    this.routes.delete(key(topic, partition));
  }
}
