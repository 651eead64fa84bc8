import { UnreachableBrokers } from "./unreachable";
import { create } from "@bufbuild/protobuf";
import { ErrorCode, InitProducerRequestSchema, ProduceRequestSchema } from "../proto/goulette_pb";
import { expectCase } from "../wire/expect-case";
import type { ClientOptions } from "./admin";
import { backoffMs } from "./backoff";
import { ClientError, WireError, codeOf, describeError, isRetriable, isStorageFailure, isTransportFailure } from "./errors";
import { LeaderDirectory, type BrokerRef } from "./leaders";
import { DEFAULT_STICKY_BYTES, Partitioner } from "./partitioner";
import { BufferPool } from "./buffer-pool";
import { encodeRecords, recordBytes, toBytes, type Header, type OutgoingRecord } from "./records";
import { SentinelClient } from "./sentinel-client";
import { SequenceNumbers } from "./sequence";
import { WireTransport, type Transport } from "./transport";

export interface ProducerMessage {
  key?: string | Uint8Array;
  value: string | Uint8Array;
  headers?: Record<string, string | Uint8Array>;
  /** Overrides the partitioner. */
  partition?: number;
}

export interface RecordMetadata {
  topic: string;
  partition: number;
  offset: number;
}

export interface ProducerOptions extends ClientOptions {
  /** Extra wait for more records before a batch goes out; 0 sends at the end of the current turn. */
  lingerMs?: number;
  maxBatchBytes?: number;
  maxBatchRecords?: number;
  /** Batches in flight per partition. */
  maxInFlightBatches?: number;
  /** Producer id + sequence numbers, so a retried batch is never appended twice (default true). */
  idempotent?: boolean;
  /** How long a broker may take to commit one batch. */
  requestTimeoutMs?: number;
  /** A message not acknowledged within this long fails, retries included. */
  deliveryTimeoutMs?: number;
  /** Bytes of messages not yet acknowledged; send() waits while more are outstanding. */
  maxBufferedBytes?: number;
}

/** What a producer is doing for one partition (see Producer.partitionState). */
export interface PartitionSendState {
  /** The broker it sends to, if it knows one. */
  leader: string | undefined;
  batchesInFlight: number;
  /** Records waiting to form a batch. */
  queued: number;
  /** Records in batches that failed and wait to be sent again. */
  retrying: number;
  /** Looking for the leader or backing off after a failure. */
  recovering: boolean;
  /** Failures since the last acknowledgement. */
  failures: number;
  lastError: string;
  /** Brokers it has found unreachable lately and avoids. */
  unreachable: number[];
}

interface Pending {
  record: OutgoingRecord;
  size: number;
  deadline: number;
  /** The send() call this record came in, and its place there. */
  call: SendCall;
  index: number;
}

/**
 * One send() call's records, settled together as Promise.all would settle a promise per record (the first
 * failure rejects; results in the order given), without a promise, two closures and a Promise.all per
 * record. Measured (`goulette bench`, 1 KiB, window 256, against a broker that answers at once, 6 runs of
 * 1M messages alternated): the client's user CPU 1.24 -> 1.04 us per message.
 */
class SendCall {
  readonly results: RecordMetadata[];
  private left: number;
  private settled = false;
  constructor(
    count: number,
    private readonly resolveAll: (r: RecordMetadata[]) => void,
    private readonly rejectAll: (e: Error) => void,
  ) {
    this.results = new Array<RecordMetadata>(count);
    this.left = count;
  }

  done(index: number, m: RecordMetadata): void {
    this.results[index] = m;
    if (--this.left === 0 && !this.settled) {
      this.settled = true;
      this.resolveAll(this.results);
    }
  }

  fail(e: Error): void {
    if (this.settled) return;
    this.settled = true;
    this.rejectAll(e);
  }
}

const NO_HEADERS: readonly Header[] = Object.freeze([]);

interface Batch {
  records: Pending[];
  bytes: Uint8Array;
  baseSequence: number;
  deadline: number;
  attempts: number;
}

export { UNREACHABLE_FORGET_MS } from "./unreachable";

/** Backoff caps: while brokers or the sentinel answer that an election is under way (Raft elects in
 * 150-300 ms), retry every few tens of ms; after a transport failure or other error, back off further. */
const ELECTION_BACKOFF_MAX_MS = 50;
const FAILURE_BACKOFF_MAX_MS = 500;
const BACKOFF_BASE_MS = 10;

/** A broker takes batches up to 8 MiB; one message must fit one batch with its header. */
export const MAX_MESSAGE_BYTES = 8 * 1024 * 1024 - 1024;
/** Free batch memory a producer keeps for reuse: 16 batches of the default 1 MiB. */
const POOL_BYTES_MAX = 16 * 1024 * 1024;

const defaults = {
  lingerMs: 0,
  // As Kafka's max.request.size. Large enough that a window of 256 x 1 KiB (263 KB with record headers)
  // is one batch, not a full one and a remainder (two requests, and at times two Raft rounds). Measured
  // (3 brokers, RF3, window 256, alternated, 4 rounds): 1 KiB 48.5k -> 51.6k msg/s and 19.6 -> 13.0 WAL
  // fdatasyncs per 1,000 messages; 8 partitions 49.1k -> 51.7k; 64 KiB 1,267 -> 1,537 msg/s (83 -> 101
  // MB/s), fdatasyncs per 1,000 messages 612 -> 237.
  maxBatchBytes: 1024 * 1024,
  maxBatchRecords: 16_384,
  // Few batches in flight per partition: while they are out, new records gather into the next batch
  // instead of leaving one by one, so batches grow with the load and each costs the brokers one Raft
  // entry, one WAL record and one request. Measured (3 brokers, 1 KiB, window 256, interleaved runs):
  // 8 partitions 14-18k msg/s at 32 -> 21-30k at 2 and 21-22k at 4; 1 partition 31-43k at 32 -> 42-46k
  // at 4. (The broker remembers 256 recent batches per producer for dedupe, far above this.)
  maxInFlightBatches: 4,
  idempotent: true,
  requestTimeoutMs: 10_000,
  deliveryTimeoutMs: 30_000,
  maxBufferedBytes: 64 * 1024 * 1024,
};

/**
 * Sends messages to topics and resolves each once its batch is committed by a majority of replicas.
 * Records are gathered per partition into batches (by size and linger time); each partition keeps a window
 * of batches in flight to its leader and retries failed ones in sequence order after finding the leader again.
 */
export class Producer {
  readonly options: Required<Omit<ProducerOptions, "transport" | "sentinelTimeoutMs">>;
  readonly sentinel: SentinelClient;
  readonly directory: LeaderDirectory;
  readonly sequences = new SequenceNumbers();
  private readonly transport: Transport;
  private readonly ownsTransport: boolean;
  // Keyless messages fill one partition for 256 KiB (or a batch, if smaller) before the next partition's
  // turn. Measured (3 brokers, RF3, 8 partitions, 1 KiB, window 256, interleaved): one partition per
  // message 16-23k msg/s, 16 KiB 22-23k, 64 KiB 30k, 256 KiB 30-47k.
  private readonly partitioner: Partitioner;
  private readonly senders = new Map<string, PartitionSender>();
  /** The same senders by topic, then partition: found per record without building a key. */
  private readonly sendersByTopic = new Map<string, (PartitionSender | undefined)[]>();
  /**
   * Batch memory, reused once a batch is answered (see buffer-pool.ts). Only over the wire transport: an
   * in-memory one given in the options may keep the request's bytes as they are.
   */
  readonly batchMemory: BufferPool | undefined;
  private bufferedBytes = 0;
  private spaceWaiters: (() => void)[] = [];
  private identity: Promise<{ producerId: number; producerEpoch: number }> | undefined;
  /** The producer id once allocated (or the non-idempotent zeros), for send()'s synchronous path. */
  private identityKnown: { producerId: number; producerEpoch: number } | undefined;
  /** send() calls waiting for metadata, an id or buffer space; later ones wait behind them. */
  private waitingSends = 0;
  private closed = false;

  constructor(opts: ProducerOptions) {
    this.options = { ...defaults, ...stripUndefined(opts), sentinels: opts.sentinels } as Producer["options"];
    if (this.options.maxBatchBytes < 1024) throw new Error(`maxBatchBytes must be >= 1024, got ${this.options.maxBatchBytes}`);
    if (this.options.maxInFlightBatches < 1) throw new Error(`maxInFlightBatches must be >= 1`);
    this.partitioner = new Partitioner(Math.min(this.options.maxBatchBytes, DEFAULT_STICKY_BYTES));
    this.ownsTransport = opts.transport === undefined;
    if (this.ownsTransport) this.batchMemory = new BufferPool(Math.min(this.options.maxBufferedBytes, POOL_BYTES_MAX));
    this.transport = opts.transport ?? new WireTransport();
    this.sentinel = new SentinelClient(opts.sentinels, this.transport, { timeoutMs: opts.sentinelTimeoutMs });
    this.directory = new LeaderDirectory(this.sentinel);
    if (!this.options.idempotent) this.identityKnown = { producerId: 0, producerEpoch: 0 };
  }

  /** Resolves with one {partition, offset} per message, in the order given, once all are committed. */
  send(topic: string, messages: ProducerMessage[]): Promise<RecordMetadata[]> {
    if (this.closed) return Promise.reject(new ClientError(ErrorCode.SHUTTING_DOWN, "producer is closed"));
    if (messages.length === 0) return Promise.resolve([]);
    // With the topic and the producer id known and room in the buffer, the records are queued before
    // send() returns (no await per message: it cost a quarter of the producer's time per 1 KiB message).
    // Not while an earlier send() still waits, or these records would overtake its.
    const count = this.directory.knownPartitionCount(topic);
    const id = this.identityKnown;
    if (count !== undefined && id !== undefined && this.waitingSends === 0 && !this.bufferFull()) {
      try {
        return this.enqueue(topic, messages, count, id);
      } catch (e) {
        return Promise.reject(e);
      }
    }
    return this.sendAfterWaiting(topic, messages);
  }

  private bufferFull(): boolean {
    return this.bufferedBytes > 0 && this.bufferedBytes >= this.options.maxBufferedBytes;
  }

  private async sendAfterWaiting(topic: string, messages: ProducerMessage[]): Promise<RecordMetadata[]> {
    this.waitingSends++;
    try {
      const [count, id] = await Promise.all([this.directory.partitionCount(topic), this.producerIdentity()]);
      while (this.bufferFull()) {
        await new Promise<void>((resolve) => this.spaceWaiters.push(resolve));
      }
      if (this.closed) throw new ClientError(ErrorCode.SHUTTING_DOWN, "producer is closed");
      return this.enqueue(topic, messages, count, id);
    } finally {
      this.waitingSends--;
    }
  }

  /** Queues the records with their partitions' senders; resolves once all are committed. */
  private enqueue(
    topic: string,
    messages: ProducerMessage[],
    count: number,
    id: { producerId: number; producerEpoch: number },
  ): Promise<RecordMetadata[]> {
    const now = Date.now();
    const deadline = now + this.options.deliveryTimeoutMs;
    const loadBytes = (partition: number) => this.loadBytes(topic, partition);
    let call!: SendCall;
    const all = new Promise<RecordMetadata[]>((resolve, reject) => (call = new SendCall(messages.length, resolve, reject)));
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i]!;
      const record: OutgoingRecord = {
        key: m.key === undefined ? undefined : toBytes(m.key),
        value: toBytes(m.value),
        headers: m.headers ? Object.entries(m.headers).map(([k, v]) => ({ key: k, value: toBytes(v) })) : (NO_HEADERS as Header[]),
        timestampMs: now,
      };
      const size = recordBytes(record);
      // Refused here, before it takes a sequence number: a batch the broker rejects would leave a gap.
      if (size > MAX_MESSAGE_BYTES) {
        throw new ClientError(ErrorCode.BATCH_TOO_LARGE, `a message of ${size} bytes is larger than the ${MAX_MESSAGE_BYTES}-byte limit`);
      }
      const partition = m.partition ?? this.partitioner.partition(record.key, count, size, loadBytes);
      if (!Number.isInteger(partition) || partition < 0 || partition >= count) {
        throw new ClientError(ErrorCode.UNKNOWN_PARTITION, `${topic} has ${count} partitions, no partition ${partition}`);
      }
      this.bufferedBytes += size;
      this.sender(topic, partition, id).add({ record, size, deadline, call, index: i });
    }
    return all;
  }

  /** @internal A record's batch was committed at `offset`. */
  settle(p: Pending, m: RecordMetadata): void {
    this.release(p.size);
    p.call.done(p.index, m);
  }

  /** @internal A record will not be delivered. */
  fail(p: Pending, e: Error): void {
    this.release(p.size);
    p.call.fail(e);
  }

  /**
   * What the producer is doing for one partition: where it sends, what waits, its last error. For telling
   * why a partition's messages are not acknowledged; undefined before anything was sent to it.
   */
  partitionState(topic: string, partition: number): PartitionSendState | undefined {
    return this.sendersByTopic.get(topic)?.[partition]?.state();
  }

  /** Checks the topic exists and gets the producer id; returns the topic's partition count. */
  async prepare(topic: string): Promise<number> {
    const [count] = await Promise.all([this.directory.partitionCount(topic), this.producerIdentity()]);
    return count;
  }

  /** Resolves when every message handed to send() so far is acknowledged or failed. */
  async flush(): Promise<void> {
    await Promise.all([...this.senders.values()].map((s) => s.idle()));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.flush();
    if (this.ownsTransport) this.transport.close();
  }

  private release(bytes: number): void {
    this.bufferedBytes -= bytes;
    if (this.bufferedBytes < 0) throw new Error(`producer buffer accounting went negative: ${this.bufferedBytes}`);
    if (this.bufferedBytes < this.options.maxBufferedBytes && this.spaceWaiters.length > 0) {
      const w = this.spaceWaiters;
      this.spaceWaiters = [];
      for (const f of w) f();
    }
  }

  /** @internal A new producer id, for a partition whose sequence had to be abandoned. */
  async freshIdentity(): Promise<{ producerId: number; producerEpoch: number }> {
    const r = await this.sentinel.request({ case: "initProducer", value: create(InitProducerRequestSchema, {}) }, "initProducerResponse");
    const producerId = Number(r.producerId);
    if (producerId <= 0) throw new ClientError(ErrorCode.UNKNOWN, "sentinel allocated no producer id");
    return { producerId, producerEpoch: r.producerEpoch };
  }

  private producerIdentity(): Promise<{ producerId: number; producerEpoch: number }> {
    if (!this.options.idempotent) return Promise.resolve({ producerId: 0, producerEpoch: 0 });
    if (!this.identity) {
      this.identity = this.freshIdentity();
      this.identity.then(
        (id) => (this.identityKnown = id),
        // A failed allocation is retried by the next send rather than cached forever.
        () => (this.identity = undefined),
      );
    }
    return this.identity;
  }

  /** Bytes queued and in flight for one partition (the partitioner steers keyless messages by it). */
  private loadBytes(topic: string, partition: number): number {
    return this.sendersByTopic.get(topic)?.[partition]?.loadBytes ?? 0;
  }

  private sender(topic: string, partition: number, id: { producerId: number; producerEpoch: number }): PartitionSender {
    let byPartition = this.sendersByTopic.get(topic);
    if (!byPartition) {
      byPartition = [];
      this.sendersByTopic.set(topic, byPartition);
    }
    let s = byPartition[partition];
    if (!s) {
      s = new PartitionSender(topic, partition, id.producerId, id.producerEpoch, this);
      byPartition[partition] = s;
      this.senders.set(`${topic}/${partition}`, s);
    }
    return s;
  }

  /** @internal used by PartitionSender */
  call(address: string, body: Parameters<Transport["call"]>[1], timeoutMs: number) {
    return this.transport.call(address, body, timeoutMs);
  }
}

/** One partition's queue, in-flight window and retry state. */
class PartitionSender {
  private queue: Pending[] = [];
  private queueBytes = 0;
  private inflight = 0;
  private inflightBytes = 0;
  private retries: Batch[] = [];
  private leader: BrokerRef | undefined;
  private unreachable = new UnreachableBrokers();
  private recovering = false;
  private failures = 0;
  /** The last failure was a live peer saying there is no leader (yet) here: keep the backoff short. */
  private electing = false;
  private lastError = "";
  private lingering = false;
  private turnEndScheduled = false;
  /** A batch with a sequence number was given up: later sequences can never be accepted under this id. */
  private broken = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    readonly topic: string,
    readonly partition: number,
    private producerId: number,
    private producerEpoch: number,
    private readonly producer: Producer,
  ) {}

  add(p: Pending): void {
    this.queue.push(p);
    this.queueBytes += p.size;
    // A full batch does not wait for the linger time, but it does wait for the end of the turn: the
    // batches formed from one turn's records then leave together, back to back. Sent at once, a full
    // batch left ahead of the turn's remainder, which followed as a request of its own (20 records of
    // 1 KiB with 16 KiB batches: 3 requests instead of 2). Alone this did not lower the brokers' fsync
    // count (the leader often reads the two requests in separate reads: separate rounds); batches large
    // enough for the whole turn did (see maxBatchBytes).
    if (this.queueBytes >= this.producer.options.maxBatchBytes) this.scheduleTurnEnd();
    else this.schedule();
  }

  state(): PartitionSendState {
    let retrying = 0;
    for (const b of this.retries) retrying += b.records.length;
    return {
      leader: this.leader?.address,
      batchesInFlight: this.inflight,
      queued: this.queue.length,
      retrying,
      recovering: this.recovering,
      failures: this.failures,
      lastError: this.lastError,
      unreachable: this.unreachable.ids(),
    };
  }

  /** Bytes waiting here or sent and not yet answered. */
  get loadBytes(): number {
    return this.queueBytes + this.inflightBytes;
  }

  idle(): Promise<void> {
    if (this.empty()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private empty(): boolean {
    return this.queue.length === 0 && this.inflight === 0 && this.retries.length === 0;
  }

  private schedule(): void {
    if (this.producer.options.lingerMs <= 0) {
      this.scheduleTurnEnd();
      return;
    }
    if (this.lingering) return;
    this.lingering = true;
    setTimeout(() => {
      this.lingering = false;
      this.pump();
    }, this.producer.options.lingerMs);
  }

  /** Pumps once the current turn's callbacks have run (setImmediate: after the I/O that queued them). */
  private scheduleTurnEnd(): void {
    if (this.turnEndScheduled) return;
    this.turnEndScheduled = true;
    setImmediate(() => {
      this.turnEndScheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    if (this.recovering) return;
    if (!this.leader) {
      if (!this.empty()) this.recover();
      return;
    }
    const { maxInFlightBatches } = this.producer.options;
    while (this.inflight < maxInFlightBatches) {
      const batch = this.retries.shift() ?? this.formBatch();
      if (!batch) break;
      this.dispatch(batch, this.leader);
    }
    this.notifyIdle();
  }

  private formBatch(): Batch | undefined {
    const now = Date.now();
    // Records whose delivery time ran out while waiting for a leader fail here, before taking a sequence.
    while (this.queue.length > 0 && this.queue[0]!.deadline <= now) {
      const p = this.queue.shift()!;
      this.queueBytes -= p.size;
      this.producer.fail(p, this.timeoutError());
    }
    if (this.queue.length === 0) return undefined;
    const { maxBatchBytes, maxBatchRecords, idempotent } = this.producer.options;
    let n = 0;
    let bytes = 0;
    while (n < this.queue.length && n < maxBatchRecords) {
      const size = this.queue[n]!.size;
      if (n > 0 && bytes + size > maxBatchBytes) break;
      bytes += size;
      n++;
    }
    const records = this.queue.splice(0, n);
    this.queueBytes -= bytes;
    const baseSequence = idempotent ? this.producer.sequences.take(this.topic, this.partition, n) : 0;
    const pool = this.producer.batchMemory;
    const outgoing = new Array<OutgoingRecord>(n);
    let deadline = Infinity;
    for (let i = 0; i < n; i++) {
      const r = records[i]!;
      outgoing[i] = r.record;
      if (r.deadline < deadline) deadline = r.deadline;
    }
    const encoded = encodeRecords(
      outgoing,
      { producerId: this.producerId, producerEpoch: this.producerEpoch, baseSequence },
      pool && ((size) => pool.take(size)),
    );
    return { records, bytes: encoded, baseSequence, deadline, attempts: 0 };
  }

  private async dispatch(batch: Batch, leader: BrokerRef): Promise<void> {
    this.inflight++;
    this.inflightBytes += batch.bytes.length;
    batch.attempts++;
    const { requestTimeoutMs } = this.producer.options;
    try {
      const res = await this.producer.call(
        leader.address,
        {
          case: "produce",
          value: create(ProduceRequestSchema, {
            topic: this.topic,
            partition: this.partition,
            producerId: BigInt(this.producerId),
            producerEpoch: this.producerEpoch,
            baseSequence: batch.baseSequence,
            recordCount: batch.records.length,
            timeoutMs: requestTimeoutMs,
            batch: batch.bytes,
          }),
        },
        requestTimeoutMs + 1000,
      );
      const r = expectCase(res, "produceResponse");
      this.inflight--;
      this.inflightBytes -= batch.bytes.length;
      this.failures = 0;
      this.electing = false;
      this.unreachable.clear();
      const base = Number(r.baseOffset);
      const { topic, partition } = this;
      const records = batch.records;
      for (let i = 0; i < records.length; i++) this.producer.settle(records[i]!, { topic, partition, offset: base + i });
      // Answered on the one connection it went out on, so that socket has taken every byte of it. A batch
      // sent more than once is left alone: an earlier copy may still wait, unwritten, in another outbox.
      if (batch.attempts === 1) this.producer.batchMemory?.give(batch.bytes);
    } catch (err) {
      this.inflight--;
      this.inflightBytes -= batch.bytes.length;
      this.onFailure(batch, leader, err);
    }
    this.pump();
  }

  private onFailure(batch: Batch, leader: BrokerRef, err: unknown): void {
    this.lastError = `${leader.address}: ${describeError(err)}`;
    if (!isRetriable(err) || Date.now() >= batch.deadline) {
      const e = isRetriable(err) ? this.timeoutError() : err instanceof Error ? err : new Error(String(err));
      for (const p of batch.records) this.producer.fail(p, e);
      if (this.producer.options.idempotent) {
        this.broken = true;
        this.recover();
      }
      return;
    }
    // Keep sequence order: a retried batch goes out before any later one.
    this.retries.push(batch);
    this.retries.sort((a, b) => a.baseSequence - b.baseSequence);
    if (this.leader?.address !== leader.address) return; // another failure already moved us on
    const code = codeOf(err);
    // A follower that has not yet noticed the leader died still names it: believe our own failure instead.
    const hint = err instanceof WireError && code === ErrorCode.NOT_LEADER && err.leaderId && err.leaderAddress;
    this.electing = code === ErrorCode.NOT_LEADER || code === ErrorCode.LEADER_NOT_AVAILABLE || isStorageFailure(err);
    if (hint && err.leaderAddress !== leader.address && !this.unreachable.has(err.leaderId)) {
      this.leader = { id: err.leaderId, address: err.leaderAddress };
      this.producer.directory.setLeader(this.topic, this.partition, this.leader);
    } else {
      // A leader that cannot store is as good as unreachable for producing: its leadership is moving
      // (or its peers took it for dead), and the other replicas know where it went.
      if ((isTransportFailure(err) || isStorageFailure(err)) && leader.id) this.unreachable.mark(leader.id);
      if (this.electing || isTransportFailure(err)) this.leader = undefined;
    }
    this.failures++;
    this.recover();
  }

  /**
   * Waits for the window to drain (so retries go out in sequence order), backs off, finds the leader if
   * needed, then resumes. Records that run out of time while we wait fail with the last error seen.
   */
  private recover(): void {
    if (this.recovering) return;
    this.recovering = true;
    void (async () => {
      while (this.inflight > 0) await new Promise((r) => setTimeout(r, 1));
      for (;;) {
        if (this.failures > 0) {
          const maxMs = this.electing ? ELECTION_BACKOFF_MAX_MS : FAILURE_BACKOFF_MAX_MS;
          await new Promise((r) => setTimeout(r, backoffMs(this.failures - 1, BACKOFF_BASE_MS, maxMs)));
        }
        this.expire();
        if (this.broken && !(await this.restartSequence())) {
          this.failures++;
          continue;
        }
        if (this.empty()) break;
        if (this.leader) break;
        if (this.failures > 0 && this.tryReplica()) break;
        try {
          const route = await this.producer.directory.lookup(this.topic, this.partition, this.unreachable.ids());
          this.leader = route.leader;
          if (this.leader && this.unreachable.has(this.leader.id)) this.leader = this.liveReplica(route.replicas) ?? this.leader;
          break;
        } catch (err) {
          this.lastError = `sentinel: ${describeError(err)}`;
          this.electing = codeOf(err) === ErrorCode.LEADER_NOT_AVAILABLE;
          this.failures++;
        }
      }
      this.recovering = false;
      this.pump();
    })();
  }

  /**
   * During a failover the sentinel learns who leads only from the brokers' next reports, and probes a
   * broker we call unreachable before it believes us; Raft elects sooner. So while the sentinel is asked
   * in the background (which also reports the unreachable broker), we go straight to a live replica: it
   * answers NOT_LEADER naming the new leader, or LEADER_NOT_AVAILABLE until there is one.
   */
  private tryReplica(): boolean {
    const route = this.producer.directory.cached(this.topic, this.partition);
    if (!route) return false;
    void this.producer.directory.lookup(this.topic, this.partition, this.unreachable.ids()).catch(() => {});
    const sentinelLeader = route.leader && !this.unreachable.has(route.leader.id) ? route.leader : undefined;
    // Alternate between the sentinel's latest answer and the other replicas.
    this.leader = sentinelLeader && this.failures % 2 === 1 ? sentinelLeader : this.liveReplica(route.replicas);
    return this.leader !== undefined;
  }

  /**
   * After a batch was given up, the broker would refuse every later sequence as out of order. The batches
   * still waiting under the old id fail too (they are not acknowledged, so that is their honest outcome),
   * and the partition starts over under a new producer id at sequence 0.
   */
  private async restartSequence(): Promise<boolean> {
    const reason = `not delivered: an earlier batch to ${this.topic}/${this.partition} failed${this.lastError ? ` (${this.lastError})` : ""}`;
    for (const b of this.retries) for (const p of b.records) this.producer.fail(p, new ClientError(ErrorCode.OUT_OF_ORDER_SEQUENCE, reason));
    this.retries = [];
    try {
      const id = await this.producer.freshIdentity();
      this.producerId = id.producerId;
      this.producerEpoch = id.producerEpoch;
      this.producer.sequences.reset(this.topic, this.partition);
      this.broken = false;
      return true;
    } catch (err) {
      this.lastError = `sentinel: ${describeError(err)}`;
      return false;
    }
  }

  private liveReplica(replicas: BrokerRef[]): BrokerRef | undefined {
    const live = replicas.filter((r) => !this.unreachable.has(r.id));
    return live.length > 0 ? live[this.failures % live.length] : undefined;
  }

  private expire(): void {
    const now = Date.now();
    const keep: Batch[] = [];
    for (const b of this.retries) {
      if (b.deadline <= now) {
        for (const p of b.records) this.producer.fail(p, this.timeoutError());
        if (this.producer.options.idempotent) this.broken = true;
      } else keep.push(b);
    }
    this.retries = keep;
    while (this.queue.length > 0 && this.queue[0]!.deadline <= now) {
      const p = this.queue.shift()!;
      this.queueBytes -= p.size;
      this.producer.fail(p, this.timeoutError());
    }
    this.notifyIdle();
  }

  private timeoutError(): ClientError {
    const ms = this.producer.options.deliveryTimeoutMs;
    return new ClientError(
      ErrorCode.TIMEOUT,
      `could not deliver to ${this.topic}/${this.partition} within ${ms} ms${this.lastError ? ` (last: ${this.lastError})` : ""}`,
    );
  }

  private notifyIdle(): void {
    if (!this.empty() || this.idleWaiters.length === 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

