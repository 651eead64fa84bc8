// Small fake sentinels and brokers built on src/wire's `serve`, for driving the client through retries,
// redirects and long-polls without a real cluster. Each records the requests it saw.
import { afterEach } from "bun:test";
import { create } from "@bufbuild/protobuf";
import {
  DescribeTopicResponseSchema,
  ErrorCode,
  FetchResponseSchema,
  GetTopicLeaderResponseSchema,
  InitProducerResponseSchema,
  PartitionMetadataSchema,
  ProduceResponseSchema,
  TopicMetadataSchema,
  type FetchRequest,
  type GetTopicLeaderRequest,
  type ProduceRequest,
} from "../../src/proto/goulette_pb";
import { serve, type Body, type WireServer } from "../../src/wire/index";
import { protoError } from "../../src/wire/errors";
import { stampBatch, readBatchHeader } from "../../src/wire/batch";

export interface FakeBrokerInfo { id: number; address: string }

export class FakeSentinel {
  readonly server: WireServer;
  readonly leaderRequests: GetTopicLeaderRequest[] = [];
  /** Who leads, per partition; change it to move leadership. */
  leaders = new Map<number, FakeBrokerInfo>();
  replicas: FakeBrokerInfo[] = [];
  partitions = 1;
  nextProducerId = 42;
  constructor(readonly topic = "t") {
    this.server = serve({ hostname: "127.0.0.1", port: 0, handle: (b) => this.handle(b) });
  }
  get address() { return `127.0.0.1:${this.server.port}`; }
  handle(body: Body): Body | undefined {
    switch (body.case) {
      case "describeTopic":
        if (body.value.name !== this.topic) {
          return { case: "describeTopicResponse", value: create(DescribeTopicResponseSchema, { error: protoError(ErrorCode.UNKNOWN_TOPIC, `no topic ${body.value.name}`) }) };
        }
        return { case: "describeTopicResponse", value: create(DescribeTopicResponseSchema, { topic: create(TopicMetadataSchema, { name: this.topic, partitions: this.partitions, replicationFactor: 3 }) }) };
      case "initProducer":
        return { case: "initProducerResponse", value: create(InitProducerResponseSchema, { producerId: BigInt(this.nextProducerId++), producerEpoch: 0 }) };
      case "getTopicLeader": {
        this.leaderRequests.push(body.value);
        const l = this.leaders.get(body.value.partition);
        return {
          case: "getTopicLeaderResponse",
          value: create(GetTopicLeaderResponseSchema, {
            partition: create(PartitionMetadataSchema, { topic: this.topic, partition: body.value.partition, leaderId: l?.id ?? 0, leaderAddress: l?.address ?? "" }),
            replicas: this.replicas,
          }),
        };
      }
      default:
        return undefined;
    }
  }
  stop() { this.server.stop(); }
}

type ProduceHook = (req: ProduceRequest) => Body | undefined;

/** A one-partition log: appends produced batches (deduplicating by producer sequence), serves fetches with long-poll. */
export class FakeBroker {
  readonly server: WireServer;
  readonly produced: ProduceRequest[] = [];
  readonly fetches: FetchRequest[] = [];
  batches: Uint8Array[] = [];
  nextOffset = 0;
  /** "producerId/partition/baseSequence" -> base offset, and each "producerId/partition"'s next expected
   * sequence, as a broker keeps them (sequences are per partition). */
  seqToOffset = new Map<string, number>();
  nextSequence = new Map<string, number>();
  private waiters: (() => void)[] = [];
  /** Answer a produce request differently (return a body), or undefined to append normally. */
  onProduce: ProduceHook | undefined;
  /** Answer a fetch differently (return a body), or undefined to serve it. */
  onFetch: ((req: FetchRequest) => Body | undefined) | undefined;
  /** While set, produce requests wait for it before they are answered. */
  gate: Promise<void> | undefined;
  constructor(readonly id: number) {
    this.server = serve({ hostname: "127.0.0.1", port: 0, handle: (b) => this.handle(b) });
  }
  get address() { return `127.0.0.1:${this.server.port}`; }
  get info(): FakeBrokerInfo { return { id: this.id, address: this.address }; }

  append(batch: Uint8Array): number {
    const copy = new Uint8Array(batch); // a copy: Buffer.slice would be a view
    const base = this.nextOffset;
    stampBatch(copy, base, this.batches.length + 1);
    this.batches.push(copy);
    this.nextOffset += readBatchHeader(copy).recordCount;
    for (const w of this.waiters.splice(0)) w();
    return base;
  }

  async handle(body: Body): Promise<Body | undefined> {
    if (body.case === "produce") {
      this.produced.push({ ...body.value, batch: new Uint8Array(body.value.batch) } as ProduceRequest);
      if (this.gate) await this.gate;
      const hooked = this.onProduce?.(body.value);
      if (hooked) return hooked;
      const req = body.value;
      const dup = this.seqToOffset.get(`${req.producerId}/${req.partition}/${req.baseSequence}`);
      if (req.producerId !== 0n && dup !== undefined) {
        return { case: "produceResponse", value: create(ProduceResponseSchema, { baseOffset: BigInt(dup), duplicate: true }) };
      }
      const expected = this.nextSequence.get(`${req.producerId}/${req.partition}`) ?? 0;
      if (req.producerId !== 0n && req.baseSequence !== expected) {
        return { case: "produceResponse", value: create(ProduceResponseSchema, { error: protoError(ErrorCode.OUT_OF_ORDER_SEQUENCE, `expected ${expected}`) }) };
      }
      const base = this.append(req.batch);
      if (req.producerId !== 0n) {
        this.seqToOffset.set(`${req.producerId}/${req.partition}/${req.baseSequence}`, base);
        this.nextSequence.set(`${req.producerId}/${req.partition}`, req.baseSequence + req.recordCount);
      }
      return { case: "produceResponse", value: create(ProduceResponseSchema, { baseOffset: BigInt(base) }) };
    }
    if (body.case === "fetch") {
      this.fetches.push(body.value);
      const hooked = this.onFetch?.(body.value);
      if (hooked) return hooked;
      const offset = Number(body.value.offset);
      if (offset >= this.nextOffset && body.value.maxWaitMs > 0) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, body.value.maxWaitMs);
          this.waiters.push(() => { clearTimeout(t); resolve(); });
        });
      }
      const parts: Uint8Array[] = [];
      let at = 0;
      for (const b of this.batches) {
        const h = readBatchHeader(b);
        if (h.baseOffset + h.recordCount > offset) parts.push(b);
        at += b.length;
      }
      const records = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let o = 0;
      for (const p of parts) { records.set(p, o); o += p.length; }
      return {
        case: "fetchResponse",
        value: create(FetchResponseSchema, { highWatermark: BigInt(this.nextOffset), nextOffset: BigInt(this.nextOffset), replicaId: this.id, records }),
      };
    }
    return undefined;
  }
  stop() { this.server.stop(); }
}

/**
 * Stops what a test file's tests start, after each test, newest first: `track(server)` for what has
 * stop(), `closing(client)` for what has close(), `stops.push(fn)` for anything else.
 */
export function cleanupAfterEach() {
  const stops: (() => unknown)[] = [];
  afterEach(async () => {
    for (const s of stops.splice(0).reverse()) await s();
  });
  const track = <T extends { stop(): unknown }>(x: T): T => {
    stops.push(() => x.stop());
    return x;
  };
  const closing = <T extends { close(): Promise<void> }>(x: T): T => {
    stops.push(() => x.close());
    return x;
  };
  return { stops, track, closing };
}
