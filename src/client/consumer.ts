import { UnreachableBrokers } from "./unreachable";
import { create } from "@bufbuild/protobuf";
import {
  ErrorCode,
  FetchRequestSchema,
  OffsetCommitRequestSchema,
  OffsetFetchRequestSchema,
  ReadFrom,
} from "../proto/goulette_pb";
import { expectCase } from "../wire/expect-case";
import type { ClientOptions } from "./admin";
import { backoffMs, sleep } from "./backoff";
import { ClientError, WireError, codeOf, isRetriable, isTransportFailure } from "./errors";
import { GroupMember } from "./group";
import { LeaderDirectory, type BrokerRef } from "./leaders";
import { decodeRecords, type Header } from "./records";
import { SentinelClient } from "./sentinel-client";
import { WireTransport, type Transport } from "./transport";

export type StartFrom = number | "beginning" | "latest";

export interface ConsumerOptions extends ClientOptions {
  /** Join this consumer group: partitions are shared with its other members and offsets committed. */
  groupId?: string;
  /** "follower" reads from a replica that is not the leader (the leader when there is none). */
  readFrom?: "leader" | "follower";
  /** Long-poll: how long a broker may hold a fetch at the log end. */
  maxWaitMs?: number;
  maxBytes?: number;
  /** Where a partition without a committed offset starts (group) or an assignment without `from`. */
  defaultFrom?: "beginning" | "latest";
  autoCommit?: boolean;
  autoCommitIntervalMs?: number;
  sessionTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** Messages fetched but not yet taken by the application, across partitions; fetching pauses beyond it. */
  maxBufferedMessages?: number;
}

export interface ConsumedMessage {
  topic: string;
  partition: number;
  offset: number;
  key: Uint8Array | undefined;
  value: Uint8Array;
  headers: Header[];
  timestamp: number;
}

export interface Assignment {
  topic: string;
  partition: number;
  from?: StartFrom;
}

export interface TopicPartitionOffset {
  topic: string;
  partition: number;
  offset: number;
}

const defaults = {
  readFrom: "leader" as "leader" | "follower",
  maxWaitMs: 500,
  maxBytes: 1024 * 1024,
  defaultFrom: "latest" as "beginning" | "latest",
  autoCommit: true,
  autoCommitIntervalMs: 1000,
  sessionTimeoutMs: 10_000,
  requestTimeoutMs: 10_000,
  maxBufferedMessages: 50_000,
};

type ConsumerSettings = typeof defaults & { groupId: string | undefined };

const tp = (topic: string, partition: number) => `${topic}/${partition}`;

/**
 * Reads messages from assigned partitions (or, in a group, the partitions the group hands this member),
 * one long-polling fetch loop per partition feeding a bounded buffer the application drains.
 */
export class Consumer implements AsyncIterable<ConsumedMessage> {
  readonly settings: ConsumerSettings;
  readonly sentinel: SentinelClient;
  readonly directory: LeaderDirectory;
  private readonly transport: Transport;
  private readonly ownsTransport: boolean;
  private readonly readers = new Map<string, PartitionReader>();
  private buffer: ConsumedMessage[] = [];
  private bufferHead = 0;
  private readonly consumed = new Map<string, number>();
  private readonly committed = new Map<string, number>();
  private waiters: (() => void)[] = [];
  private spaceWaiters: (() => void)[] = [];
  private group: GroupMember | undefined;
  private commitTimer: ReturnType<typeof setInterval> | undefined;
  private closed = false;
  private failure: Error | undefined;

  constructor(opts: ConsumerOptions) {
    const given = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined));
    this.settings = { ...defaults, ...given, groupId: opts.groupId } as ConsumerSettings;
    this.ownsTransport = opts.transport === undefined;
    this.transport = opts.transport ?? new WireTransport();
    this.sentinel = new SentinelClient(opts.sentinels, this.transport, { timeoutMs: opts.sentinelTimeoutMs });
    this.directory = new LeaderDirectory(this.sentinel);
  }

  /** Reads exactly these partitions, without a group. */
  assign(assignments: Assignment[]): void {
    if (this.group) throw new ClientError(ErrorCode.INVALID_ARGUMENT, "a group member's partitions are assigned by its group");
    this.setAssignment(assignments);
  }

  /** All partitions of `topic`, from the same starting point. */
  async assignTopic(topic: string, from?: StartFrom): Promise<Assignment[]> {
    const n = await this.directory.partitionCount(topic);
    const list = Array.from({ length: n }, (_, partition) => ({ topic, partition, from }));
    this.assign(list);
    return list;
  }

  /** Joins the consumer group (groupId) for these topics; partitions arrive through rebalances. */
  async subscribe(topics: string[]): Promise<void> {
    const groupId = this.settings.groupId;
    if (!groupId) throw new ClientError(ErrorCode.INVALID_ARGUMENT, "subscribe needs a groupId");
    if (this.group) throw new ClientError(ErrorCode.INVALID_ARGUMENT, "already subscribed");
    this.group = new GroupMember(this.sentinel, groupId, topics, this.settings.sessionTimeoutMs, {
      onRevoke: async () => {
        await this.commit().catch(() => {});
        this.setAssignment([]);
      },
      onAssign: async (parts) => this.setAssignment(await this.startingPoints(parts)),
      onFatal: (err) => this.fail(err),
    });
    await this.group.start();
    if (this.settings.autoCommit) {
      this.commitTimer = setInterval(() => void this.commit().catch(() => {}), this.settings.autoCommitIntervalMs);
    }
  }

  /** Partitions currently read. */
  /** This member's place in its group now (undefined outside a group); a rejoin gives a new member id. */
  groupMetadata(): { groupId: string; memberId: string; generation: number } | undefined {
    if (!this.group || !this.settings.groupId) return undefined;
    return { groupId: this.settings.groupId, memberId: this.group.memberId, generation: this.group.generation };
  }

  assignment(): { topic: string; partition: number }[] {
    return [...this.readers.values()].map((r) => ({ topic: r.topic, partition: r.partition }));
  }

  /** Next offset the application will see for a partition. */
  position(topic: string, partition: number): number | undefined {
    return this.consumed.get(tp(topic, partition)) ?? this.readers.get(tp(topic, partition))?.startOffset;
  }

  /**
   * True when every assigned partition's last fetch came back empty at its high watermark and nothing is
   * buffered: there was nothing more to read a moment ago.
   */
  caughtUp(): boolean {
    if (this.readers.size === 0 || this.buffered() > 0) return false;
    for (const r of this.readers.values()) if (!r.atEnd) return false;
    return true;
  }

  /** Waits up to `timeoutMs` for messages and returns those buffered (at most `max`). */
  async poll(timeoutMs = this.settings.maxWaitMs, max = 10_000): Promise<ConsumedMessage[]> {
    if (this.buffered() === 0 && !this.failure && !this.closed) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, timeoutMs);
        function done() { clearTimeout(timer); resolve(); }
        this.waiters.push(done);
      });
    }
    if (this.failure) throw this.failure;
    const out: ConsumedMessage[] = [];
    while (out.length < max && this.bufferHead < this.buffer.length) {
      const m = this.buffer[this.bufferHead++]!;
      if (!this.readers.has(tp(m.topic, m.partition))) continue; // revoked while buffered
      this.consumed.set(tp(m.topic, m.partition), m.offset + 1);
      out.push(m);
    }
    if (this.bufferHead > 4096 && this.bufferHead * 2 > this.buffer.length) {
      this.buffer = this.buffer.slice(this.bufferHead);
      this.bufferHead = 0;
    }
    this.wakeSpace();
    return out;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<ConsumedMessage> {
    while (!this.closed) {
      const batch = await this.poll(this.settings.maxWaitMs);
      for (const m of batch) yield m;
    }
  }

  /** Commits offsets (default: everything the application has taken) to each partition's leader. */
  async commit(offsets?: TopicPartitionOffset[]): Promise<void> {
    const groupId = this.settings.groupId;
    if (!groupId) throw new ClientError(ErrorCode.INVALID_ARGUMENT, "commit needs a groupId");
    const list =
      offsets ??
      [...this.consumed.entries()]
        .filter(([k, off]) => this.committed.get(k) !== off)
        .map(([k, offset]) => {
          const i = k.lastIndexOf("/");
          return { topic: k.slice(0, i), partition: Number(k.slice(i + 1)), offset };
        });
    await Promise.all(
      list.map(async ({ topic, partition, offset }) => {
        await this.onLeader(topic, partition, (address) =>
          this.transport
            .call(
              address,
              { case: "offsetCommit", value: create(OffsetCommitRequestSchema, { groupId, topic, partition, offset: BigInt(offset), metadata: "" }) },
              this.settings.requestTimeoutMs,
            )
            .then((r) => expectCase(r, "offsetCommitResponse")),
        );
        this.committed.set(tp(topic, partition), offset);
      }),
    );
  }

  /** The group's committed offset for a partition, or undefined when it has none. */
  async committedOffset(topic: string, partition: number): Promise<number | undefined> {
    const groupId = this.settings.groupId;
    if (!groupId) throw new ClientError(ErrorCode.INVALID_ARGUMENT, "committedOffset needs a groupId");
    const r = await this.onLeader(topic, partition, (address) =>
      this.transport
        .call(address, { case: "offsetFetch", value: create(OffsetFetchRequestSchema, { groupId, topic, partition }) }, this.settings.requestTimeoutMs)
        .then((res) => expectCase(res, "offsetFetchResponse")),
    );
    return r.found ? Number(r.offset) : undefined;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.commitTimer) clearInterval(this.commitTimer);
    if (this.group) {
      await this.commit().catch(() => {});
      await this.group.stop();
    }
    this.closed = true;
    this.setAssignment([]);
    this.wake();
    if (this.ownsTransport) this.transport.close();
  }

  // ---- internals used by PartitionReader ----

  /** @internal */
  get isClosed(): boolean {
    return this.closed;
  }

  /** @internal */
  call(address: string, body: Parameters<Transport["call"]>[1], timeoutMs: number) {
    return this.transport.call(address, body, timeoutMs);
  }

  /** @internal */
  push(reader: PartitionReader, messages: ConsumedMessage[]): void {
    if (this.readers.get(tp(reader.topic, reader.partition)) !== reader) return;
    for (const m of messages) this.buffer.push(m);
    this.wake();
  }

  /** @internal waits while the buffer is full */
  async space(): Promise<void> {
    while (this.buffered() >= this.settings.maxBufferedMessages && !this.closed) {
      await new Promise<void>((resolve) => this.spaceWaiters.push(resolve));
    }
  }

  /** @internal */
  wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private wakeSpace(): void {
    const w = this.spaceWaiters;
    this.spaceWaiters = [];
    for (const f of w) f();
  }

  private fail(err: Error): void {
    this.failure = err;
    this.wake();
  }

  private buffered(): number {
    return this.buffer.length - this.bufferHead;
  }

  private setAssignment(assignments: Assignment[]): void {
    const want = new Map(assignments.map((a) => [tp(a.topic, a.partition), a]));
    for (const [k, r] of this.readers) {
      if (!want.has(k)) {
        r.stop();
        this.readers.delete(k);
        this.consumed.delete(k);
      }
    }
    for (const [k, a] of want) {
      if (this.readers.has(k)) continue;
      const r = new PartitionReader(this, a.topic, a.partition, a.from ?? this.settings.defaultFrom);
      this.readers.set(k, r);
      r.start();
    }
    this.wakeSpace();
  }

  private async startingPoints(parts: { topic: string; partition: number }[]): Promise<Assignment[]> {
    return Promise.all(
      parts.map(async ({ topic, partition }) => {
        const at = await this.committedOffset(topic, partition).catch(() => undefined);
        if (at !== undefined) this.committed.set(tp(topic, partition), at);
        return { topic, partition, from: at ?? this.settings.defaultFrom };
      }),
    );
  }

  /** Runs `fn` against the partition leader, following NOT_LEADER and connection loss for a while. */
  private async onLeader<T>(topic: string, partition: number, fn: (address: string) => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.settings.requestTimeoutMs;
    const unreachable: number[] = [];
    for (let attempt = 0; ; attempt++) {
      let leader: BrokerRef | undefined;
      try {
        leader = this.directory.cached(topic, partition)?.leader ?? (await this.directory.lookup(topic, partition, unreachable)).leader;
        if (!leader) throw new WireError(ErrorCode.LEADER_NOT_AVAILABLE, `no leader for ${topic}/${partition}`);
        return await fn(leader.address);
      } catch (err) {
        if (!isRetriable(err) || Date.now() >= deadline) throw err;
        if (err instanceof WireError && err.code === ErrorCode.NOT_LEADER && err.leaderAddress) {
          this.directory.setLeader(topic, partition, { id: err.leaderId, address: err.leaderAddress });
        } else {
          if (leader && isTransportFailure(err)) unreachable.push(leader.id);
          this.directory.invalidate(topic, partition);
        }
        await sleep(backoffMs(attempt, 20, 500));
      }
    }
  }
}

/** One partition's fetch loop. */
class PartitionReader {
  private active = true;
  private offset: number | undefined;
  /** True after a fetch at or past the high watermark returned nothing. */
  atEnd = false;
  private replicaIndex = 0;

  constructor(
    private readonly consumer: Consumer,
    readonly topic: string,
    readonly partition: number,
    private readonly from: StartFrom,
  ) {
    if (typeof from === "number") {
      if (!Number.isInteger(from) || from < 0) throw new ClientError(ErrorCode.INVALID_ARGUMENT, `offset must be >= 0, got ${from}`);
      this.offset = from;
    }
  }

  get startOffset(): number | undefined {
    return this.offset;
  }

  start(): void {
    void this.run();
  }

  stop(): void {
    this.active = false;
  }

  private async run(): Promise<void> {
    const { settings } = this.consumer;
    let failures = 0;
    let hops = 0; // NOT_LEADER hints followed in a row, bounded so two stale replicas cannot ping-pong us
    const unreachable = new UnreachableBrokers();
    let route: { leader: BrokerRef; replicas: BrokerRef[] } | undefined;
    while (this.active && !this.consumer.isClosed) {
      await this.consumer.space();
      if (!this.active) return;
      let target: BrokerRef | undefined;
      try {
        if (!route) {
          const r = await this.consumer.directory.lookup(this.topic, this.partition, unreachable.ids());
          route = { leader: r.leader!, replicas: r.replicas };
        }
        target = this.pickReplica(route, unreachable);
        const asking = this.offset ?? 0;
        const latest = this.offset === undefined && this.from === "latest";
        const res = await this.consumer.call(
          target.address,
          {
            case: "fetch",
            value: create(FetchRequestSchema, {
              topic: this.topic,
              partition: this.partition,
              offset: BigInt(asking),
              maxBytes: latest ? 1 : settings.maxBytes,
              maxWaitMs: latest || this.offset === undefined ? 0 : settings.maxWaitMs,
              readFrom: settings.readFrom === "follower" ? ReadFrom.FOLLOWER : ReadFrom.LEADER,
            }),
          },
          settings.maxWaitMs + settings.requestTimeoutMs,
        );
        const r = expectCase(res, "fetchResponse");
        if (!this.active) return;
        failures = 0;
        hops = 0;
        unreachable.clear();
        const hw = Number(r.highWatermark);
        if (this.offset === undefined) {
          // First fetch only learnt where the log starts and ends.
          this.offset = this.from === "latest" ? hw : Math.max(asking, Number(r.logStartOffset));
          if (this.from !== "latest" && asking >= Number(r.logStartOffset)) this.deliver(r.records, hw, Number(r.nextOffset));
          continue;
        }
        const before = this.offset;
        this.deliver(r.records, hw, Number(r.nextOffset));
        // Data was there but none of it could be used (a batch cut by max_bytes): do not spin on it.
        if (this.offset === before && before < hw) await sleep(backoffMs(failures++, 20, 1000));
      } catch (err) {
        if (!this.active) return;
        const code = codeOf(err);
        if (err instanceof WireError && code === ErrorCode.OFFSET_OUT_OF_RANGE) {
          // Retention removed what we asked for, or we asked past the end: go to the nearest valid offset.
          const asked = this.offset ?? 0;
          this.offset = asked < err.earliestOffset ? err.earliestOffset : Math.min(asked, err.latestOffset);
          if (this.offset === asked) await sleep(backoffMs(failures++, 20, 500));
          continue;
        }
        if (!isRetriable(err) && code !== ErrorCode.UNKNOWN_TOPIC) {
          // Corrupt data and the like: nothing a retry on the same replica fixes; try another one later.
          failures++;
        }
        if (target && isTransportFailure(err)) unreachable.mark(target.id);
        const hinted =
          err instanceof WireError && code === ErrorCode.NOT_LEADER && err.leaderId && err.leaderAddress && !unreachable.has(err.leaderId)
            ? { id: err.leaderId, address: err.leaderAddress }
            : undefined;
        if (hinted && route && hops++ < 3) {
          // The replica named the leader: go there now rather than wait for the sentinel to learn it.
          route = { leader: hinted, replicas: route.replicas };
          this.consumer.directory.setLeader(this.topic, this.partition, hinted);
          continue;
        }
        if (code === ErrorCode.NOT_LEADER || code === ErrorCode.LEADER_NOT_AVAILABLE || isTransportFailure(err)) {
          this.consumer.directory.invalidate(this.topic, this.partition);
        }
        route = undefined;
        this.replicaIndex++;
        await sleep(backoffMs(failures++, 20, 1000));
      }
    }
  }

  private deliver(records: Uint8Array, hw: number, nextOffset: number): void {
    const at = this.offset!;
    const decoded = records.length > 0 ? decodeRecords(records) : [];
    const messages: ConsumedMessage[] = [];
    for (const d of decoded) {
      // A stored batch may begin before the offset asked for, and never past the committed end.
      if (d.offset < at || d.offset >= hw) continue;
      messages.push({ topic: this.topic, partition: this.partition, offset: d.offset, key: d.key, value: d.value, headers: d.headers, timestamp: d.timestampMs });
    }
    if (messages.length > 0) {
      this.offset = messages[messages.length - 1]!.offset + 1;
      this.atEnd = false;
      this.consumer.push(this, messages);
    } else {
      if (nextOffset > at && nextOffset <= hw) this.offset = nextOffset;
      this.atEnd = this.offset! >= hw;
      if (this.atEnd) this.consumer.wake();
    }
  }

  private pickReplica(route: { leader: BrokerRef; replicas: BrokerRef[] }, unreachable: UnreachableBrokers): BrokerRef {
    if (this.consumer.settings.readFrom === "leader") {
      if (!unreachable.has(route.leader.id)) return route.leader;
      // The sentinel still names a leader we could not reach: a live replica will name the new one.
      const live = route.replicas.filter((b) => !unreachable.has(b.id));
      return live.length > 0 ? live[this.replicaIndex % live.length]! : route.leader;
    }
    const followers = route.replicas.filter((b) => b.id !== route.leader.id && !unreachable.has(b.id));
    if (followers.length === 0) return route.leader;
    return followers[this.replicaIndex % followers.length]!;
  }
}

