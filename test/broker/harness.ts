// In-process brokers for tests: real WAL, real sockets on 127.0.0.1 port 0, no sentinel (the test plays the
// sentinel by calling SetTopicRole itself), so broker behaviour is tested on its own.
import { create } from "@bufbuild/protobuf";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startBroker, brokerDefaults, type RunningBroker } from "../../src/broker";
import type { BrokerOptions } from "../../src/broker/options";
import { createLogger, silentLogger } from "../../src/log";
import { FaultyFileLayer } from "../../src/storage";

/** GOULETTE_TEST_LOG=debug shows the brokers' logs on stderr. */
const testLogger = process.env.GOULETTE_TEST_LOG ? createLogger(process.env.GOULETTE_TEST_LOG as "debug") : silentLogger;
import {
  BrokerInfoSchema,
  FetchRequestSchema,
  ProduceRequestSchema,
  ReadFrom,
  Role,
  SetTopicRoleRequestSchema,
} from "../../src/proto/goulette_pb";
import { Role as RaftRole } from "../../src/raft/types";
import { ClientPool, expectCase } from "../../src/wire";
import { decodeBatch, encodeBatch, splitBatches } from "../../src/wire/batch";

export class BrokerCluster {
  readonly dir = mkdtempSync(join(tmpdir(), "goulette-broker-test-"));
  brokers: (RunningBroker | undefined)[] = [];
  addresses: string[] = [];
  pool = new ClientPool({ requestTimeoutMs: 5_000 });
  /** With `faultyDisks`, broker i's WAL and partition logs write through disks[i] (kept across restarts). */
  readonly disks: FaultyFileLayer[] = [];

  constructor(
    private overrides: Partial<BrokerOptions> = {},
    private readonly faultyDisks = false,
  ) {}

  options(i: number, listen: string): BrokerOptions {
    return {
      ...brokerDefaults,
      id: i + 1,
      listen,
      sentinels: ["127.0.0.1:1"],
      dataDir: join(this.dir, `b${i + 1}`),
      logLevel: "error",
      // Off unless a test turns it on: a scrub that repairs damage first would race tests of the read path.
      scrubBytesPerS: 0,
      ...(this.faultyDisks ? { fs: (this.disks[i] ??= new FaultyFileLayer()) } : {}),
      ...this.overrides,
    };
  }

  async start(n: number): Promise<void> {
    for (let i = 0; i < n; i++) {
      const b = await startBroker(this.options(i, "127.0.0.1:0"), testLogger);
      this.brokers.push(b);
      this.addresses.push(b.address);
    }
  }

  /** Restart broker i on the same address and data dir. */
  async restart(i: number): Promise<void> {
    const b = await startBroker(this.options(i, this.addresses[i]!), testLogger);
    this.brokers[i] = b;
  }

  /** Crash-like stop: no leadership hand-over, no unregister; the data dir stays. */
  async kill(i: number): Promise<void> {
    const b = this.brokers[i]!;
    this.brokers[i] = undefined;
    this.pool.close(this.addresses[i]!);
    await b.broker.crash();
  }

  async assign(
    topic: string,
    partition: number,
    group: number,
    replicas: number[],
    leaderHint = replicas[0]!,
    config: Record<string, string> = {},
    keepConfig = false,
  ): Promise<void> {
    for (const r of replicas) {
      const others = replicas.filter((o) => o !== r).map((o) => create(BrokerInfoSchema, { id: o + 1, address: this.addresses[o]! }));
      await this.pool.get(this.addresses[r]!).call({
        case: "setTopicRole",
        value: create(SetTopicRoleRequestSchema, {
          topic,
          partition,
          group: BigInt(group),
          role: r === leaderHint ? Role.LEADER : Role.FOLLOWER,
          followers: others,
          leaderId: leaderHint + 1,
          leaderAddress: this.addresses[leaderHint]!,
          config,
          keepConfig,
        }),
      });
    }
  }

  /** Waits for a leader other than broker `not` (say, after `not` failed). */
  async waitForLeaderOtherThan(topic: string, partition: number, not: number, timeoutMs = 5_000): Promise<number> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const l = this.leaderOf(topic, partition, not);
      if (l !== undefined) return l;
      if (Date.now() > until) throw new Error(`no leader for ${topic}/${partition} but broker ${not} within ${timeoutMs} ms`);
      await Bun.sleep(10);
    }
  }

  leaderOf(topic: string, partition: number, not?: number): number | undefined {
    for (let i = 0; i < this.brokers.length; i++) {
      if (i === not) continue;
      const p = this.brokers[i]?.broker.byName.get(`${topic}/${partition}`);
      if (p && p.node.role === RaftRole.Leader) return i;
    }
    return undefined;
  }

  async waitForLeader(topic: string, partition: number, timeoutMs = 5_000): Promise<number> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const l = this.leaderOf(topic, partition);
      if (l !== undefined) return l;
      if (Date.now() > until) throw new Error(`no leader for ${topic}/${partition} within ${timeoutMs} ms`);
      await Bun.sleep(10);
    }
  }

  /** Waits until every running replica of the partition names the same leader. */
  async waitForAgreement(topic: string, partition: number, timeoutMs = 5_000): Promise<number> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const l = this.leaderOf(topic, partition);
      const views = this.brokers.flatMap((b) => (b ? [b.broker.byName.get(`${topic}/${partition}`)?.node.leader] : []));
      if (l !== undefined && views.every((v) => v === l + 1)) return l;
      if (Date.now() > until) throw new Error(`replicas of ${topic}/${partition} do not agree on a leader within ${timeoutMs} ms`);
      await Bun.sleep(10);
    }
  }

  async produce(i: number, topic: string, partition: number, values: string[], producer = { id: 0, epoch: 0, seq: 0 }) {
    const batch = encodeBatch({
      producerId: producer.id,
      producerEpoch: producer.epoch,
      baseSequence: producer.seq,
      records: values.map((v) => ({ value: v })),
    });
    const res = await this.pool.get(this.addresses[i]!).call({
      case: "produce",
      value: create(ProduceRequestSchema, {
        topic,
        partition,
        producerId: BigInt(producer.id),
        producerEpoch: producer.epoch,
        baseSequence: producer.seq,
        recordCount: values.length,
        batch,
      }),
    });
    return expectCase(res, "produceResponse");
  }

  /** One fetch from broker i, not waiting for data. */
  async fetch(i: number, topic: string, partition: number, offset: number, readFrom = ReadFrom.ANY) {
    return expectCase(
      await this.pool.get(this.addresses[i]!).call({
        case: "fetch",
        value: create(FetchRequestSchema, { topic, partition, offset: BigInt(offset), maxBytes: 1 << 20, maxWaitMs: 0, readFrom }),
      }),
      "fetchResponse",
    );
  }

  /** Reads everything from offset 0 to the end from broker i. */
  async readAll(i: number, topic: string, partition: number, readFrom = ReadFrom.ANY): Promise<{ offset: number; value: string }[]> {
    const out: { offset: number; value: string }[] = [];
    let offset = 0;
    for (;;) {
      const r = await this.fetch(i, topic, partition, offset, readFrom);
      for (const b of splitBatches(r.records)) for (const rec of decodeBatch(b)) out.push({ offset: rec.offset, value: new TextDecoder().decode(rec.value) });
      if (Number(r.nextOffset) === offset || Number(r.nextOffset) >= Number(r.highWatermark)) {
        offset = Number(r.nextOffset);
        if (offset >= Number(r.highWatermark)) break;
      }
      offset = Number(r.nextOffset);
    }
    return out;
  }

  async stop(): Promise<void> {
    this.pool.closeAll();
    await Promise.all(this.brokers.map((b) => b?.broker.crash()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
