import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Partition } from "../../src/broker/partition";
import { create } from "@bufbuild/protobuf";
import { BrokerInfoSchema, ErrorCode, ReadFrom, Role as WireRole, SetTopicRoleRequestSchema } from "../../src/proto/goulette_pb";
import { EntryType, MessageType, Role as RaftRole } from "../../src/raft/types";
import { Wal, parseFsyncPolicy, type RecoveredGroup } from "../../src/storage";
import { WireError } from "../../src/wire";
import { tearNewestWalRecord } from "../storage/helpers";
import { BrokerCluster } from "./harness";

let cluster: BrokerCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

async function threeBrokers(): Promise<BrokerCluster> {
  cluster = new BrokerCluster();
  await cluster.start(3);
  await cluster.assign("t", 0, 1, [0, 1, 2]);
  await cluster.waitForAgreement("t", 0);
  return cluster;
}

/** Starts three brokers of `c` with t/0 (group 1) and t/1 (group 2) on all three, both led by broker 0. */
async function startTwoPartitions(c: BrokerCluster): Promise<BrokerCluster> {
  await c.start(3);
  await c.assign("t", 0, 1, [0, 1, 2]);
  await c.assign("t", 1, 2, [0, 1, 2]);
  expect(await c.waitForAgreement("t", 0)).toBe(0);
  expect(await c.waitForAgreement("t", 1)).toBe(0);
  return c;
}

async function eventually(check: () => Promise<boolean> | boolean, timeoutMs = 5_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error("condition not met in time");
    await Bun.sleep(10);
  }
}

/**
 * Three brokers; `count` values produced through the leader and replicated to a follower, which is then
 * killed (its files are the test's to damage before it restarts).
 */
async function followerKilledAfter(count: number, prefix: string): Promise<{ c: BrokerCluster; leader: number; victim: number }> {
  const c = await threeBrokers();
  const leader = c.leaderOf("t", 0)!;
  const victim = (leader + 1) % 3;
  for (let i = 0; i < count; i++) await c.produce(leader, "t", 0, [`${prefix}${i}`]);
  await eventually(async () => (await c.readAll(victim, "t", 0)).length === count);
  await c.kill(victim);
  return { c, leader, victim };
}

describe("broker: produce and fetch on one RF3 partition", () => {
  test("the hinted replica leads, acknowledges with consecutive offsets, and every replica serves identical data", async () => {
    const c = await threeBrokers();
    const leader = c.leaderOf("t", 0)!;
    expect(leader).toBe(0);
    const a = await c.produce(leader, "t", 0, ["a", "b", "c"]);
    const b = await c.produce(leader, "t", 0, ["d"]);
    expect(Number(a.baseOffset)).toBe(0);
    expect(Number(b.baseOffset)).toBe(3);
    const want = ["a", "b", "c", "d"].map((value, offset) => ({ offset, value }));
    expect(await c.readAll(leader, "t", 0)).toEqual(want);
    // Followers learn the commit index from the next heartbeat or append.
    for (const f of [1, 2]) await eventually(async () => (await c.readAll(f, "t", 0)).length === 4);
    for (const f of [1, 2]) expect(await c.readAll(f, "t", 0, ReadFrom.FOLLOWER)).toEqual(want);
  });

  test("a follower answers produce with NOT_LEADER naming the leader's address", async () => {
    const c = await threeBrokers();
    const leader = c.leaderOf("t", 0)!;
    const follower = (leader + 1) % 3;
    const err = await c.produce(follower, "t", 0, ["x"]).catch((e) => e);
    expect(err).toBeInstanceOf(WireError);
    expect((err as WireError).code).toBe(ErrorCode.NOT_LEADER);
    expect((err as WireError).leaderAddress).toBe(c.addresses[leader]!);
  });

  test("unknown partition and out-of-range offsets get typed errors", async () => {
    const c = await threeBrokers();
    const leader = c.leaderOf("t", 0)!;
    const unknown = await c.produce(leader, "nope", 0, ["x"]).catch((e) => e);
    expect((unknown as WireError).code).toBe(ErrorCode.UNKNOWN_PARTITION);
    await c.produce(leader, "t", 0, ["a"]);
    const { create } = await import("@bufbuild/protobuf");
    const { FetchRequestSchema } = await import("../../src/proto/goulette_pb");
    const res = await c.pool.get(c.addresses[leader]!).call({
      case: "fetch",
      value: create(FetchRequestSchema, { topic: "t", partition: 0, offset: 99n, maxBytes: 1024 }),
    });
    const err = (() => {
      try {
        const { expectCase } = require("../../src/wire");
        expectCase(res, "fetchResponse");
      } catch (e) {
        return e as WireError;
      }
    })();
    expect(err?.code).toBe(ErrorCode.OFFSET_OUT_OF_RANGE);
    expect(err?.earliestOffset).toBe(0);
    expect(err?.latestOffset).toBe(1);
  });

  test("a corrupt batch is rejected and nothing is appended", async () => {
    const c = await threeBrokers();
    const leader = c.leaderOf("t", 0)!;
    const { create } = await import("@bufbuild/protobuf");
    const { ProduceRequestSchema } = await import("../../src/proto/goulette_pb");
    const { encodeBatch } = await import("../../src/wire/batch");
    const { expectCase } = await import("../../src/wire");
    const batch = encodeBatch({ records: [{ value: "hello" }] });
    batch[batch.length - 1]! ^= 0xff;
    const res = await c.pool.get(c.addresses[leader]!).call({ case: "produce", value: create(ProduceRequestSchema, { topic: "t", partition: 0, batch }) });
    expect(() => expectCase(res, "produceResponse")).toThrow(/crc|checksum/i);
    await c.produce(leader, "t", 0, ["ok"]);
    expect(await c.readAll(leader, "t", 0)).toEqual([{ offset: 0, value: "ok" }]);
  });

  test("an idempotent producer's retried batch is acknowledged with its original offset and stored once", async () => {
    const c = await threeBrokers();
    const leader = c.leaderOf("t", 0)!;
    const producer = { id: 77, epoch: 0, seq: 0 };
    const first = await c.produce(leader, "t", 0, ["p0", "p1"], producer);
    const retry = await c.produce(leader, "t", 0, ["p0", "p1"], producer);
    expect(Number(retry.baseOffset)).toBe(Number(first.baseOffset));
    expect(retry.duplicate).toBe(true);
    const next = await c.produce(leader, "t", 0, ["p2"], { ...producer, seq: 2 });
    expect(Number(next.baseOffset)).toBe(2);
    const gap = await c.produce(leader, "t", 0, ["p9"], { ...producer, seq: 9 }).catch((e) => e);
    expect((gap as WireError).code).toBe(ErrorCode.OUT_OF_ORDER_SEQUENCE);
    expect((await c.readAll(leader, "t", 0)).map((r) => r.value)).toEqual(["p0", "p1", "p2"]);
  });
});

/**
 * Holds every WAL fdatasync the leader runs on the thread pool while `value` is produced through it; says
 * how many were held and what became of the produce within 5 s. (An inline fdatasync bypasses the gate.)
 */
async function produceWhileLeaderFsyncHeld(c: BrokerCluster, leader: number, value: string): Promise<{ held: number; outcome: string }> {
  const wal = c.brokers[leader]!.broker.wal as unknown as { datasyncAll(handles: unknown[]): Promise<void> };
  const original = wal.datasyncAll;
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let held = 0;
  wal.datasyncAll = async function (this: unknown, handles: unknown[]) {
    held++;
    await gate;
    return original.call(this, handles);
  };
  try {
    const outcome = await Promise.race([
      c.produce(leader, "t", 0, [value]).then((r) => `acknowledged at ${r.baseOffset}`),
      Bun.sleep(5_000).then(() => "no acknowledgement while the leader's fsync was held"),
    ]);
    return { held, outcome };
  } finally {
    release();
    wal.datasyncAll = original;
  }
}

describe("broker: pipelined rounds", () => {
  test("a batch both followers hold is acknowledged while the leader's own fdatasync is still in flight", async () => {
    const c = await threeBrokers();
    const leader = c.leaderOf("t", 0)!;
    // fdatasyncs a broker ran on the thread pool rather than inline
    const pooledOf = (i: number) => {
      const s = c.brokers[i]!.broker.wal.stats();
      return s.fsyncs - s.inlineFsyncs;
    };
    const followers = [0, 1, 2].filter((i) => i !== leader);
    const followersBefore = followers.map(pooledOf);
    // A large round (a window of 1 KiB messages is ~263 KB): nothing distinguishes it from a small one here.
    const value = "while-the-leader-syncs".padEnd(300_000, ".");
    const { held, outcome } = await produceWhileLeaderFsyncHeld(c, leader, value);
    // Committed by the two followers' copies: the leader's answer needs no disk of its own, and its next
    // round (the commit) does not wait behind the round whose fsync is held.
    expect(held).toBeGreaterThan(0);
    expect(outcome).toBe("acknowledged at 0");
    // Each follower's round waited alone for its own disk, so it ran inline however large: the thread
    // pool's hop there and back lies on the path of every acknowledgement.
    expect(followers.map(pooledOf)).toEqual(followersBefore);
    expect(await c.readAll(leader, "t", 0)).toEqual([{ offset: 0, value }]);
  });

  test("a produce's acknowledgement is released before the commit notices leave for the followers", async () => {
    const c = await threeBrokers();
    const leader = c.leaderOf("t", 0)!;
    const b = c.brokers[leader]!.broker;
    const entryIndex = b.byName.get("t/0")!.node.lastIndex + 1; // the produce's entry
    const events: string[] = [];
    const flush = b.peers.flush.bind(b.peers);
    const outbox = (b.peers as unknown as { outbox: Map<number, { msg: { type: MessageType; entries: unknown[]; commit: number } }[]> }).outbox;
    b.peers.flush = (now?: boolean) => {
      for (const q of outbox.values()) {
        for (const { msg } of q) {
          if (msg.type === MessageType.Append && msg.entries.length === 0 && msg.commit >= entryIndex) events.push(`commit notice ${msg.commit}`);
        }
      }
      flush(now);
    };
    const handle = b.handlers.handle.bind(b.handlers);
    b.handlers.handle = (body) => {
      const r = handle(body);
      if (body.case === "produce" && r instanceof Promise) void r.then(() => events.push("acknowledged"));
      return r;
    };
    await c.produce(leader, "t", 0, ["first"]);
    await eventually(() => events.some((e) => e.startsWith("commit notice")));
    // Without the order, both followers' notices of the new commit were written to their sockets first.
    expect(events[0]).toBe("acknowledged");
  });

  test("a small batch too: a leader's round is never synced inline, a lone follower round is", async () => {
    const c = await threeBrokers();
    const leader = c.leaderOf("t", 0)!;
    const inlineOf = (i: number) => c.brokers[i]!.broker.wal.stats().inlineFsyncs;
    const follower = (leader + 1) % 3;
    const leaderBefore = inlineOf(leader);
    const followerBefore = inlineOf(follower);
    // Far below the inline limit: an inline fdatasync would block the leader's event loop (and bypass
    // the gate), so the followers' answers could not be read until its own disk answered.
    const { held, outcome } = await produceWhileLeaderFsyncHeld(c, leader, "small");
    expect(held).toBeGreaterThan(0);
    expect(outcome).toBe("acknowledged at 0");
    expect(inlineOf(leader)).toBe(leaderBefore);
    // The follower's round waited alone for its own disk: that one ran inline.
    expect(inlineOf(follower)).toBeGreaterThan(followerBefore);
    expect(await c.readAll(leader, "t", 0)).toEqual([{ offset: 0, value: "small" }]);
  });
});

describe("broker: acknowledgement before the partition log write", () => {
  test("a producer's answer is settled before its batch is written to the partition log, and reads see it", async () => {
    const c = await threeBrokers();
    const leader = c.leaderOf("t", 0)!;
    const p = c.brokers[leader]!.broker.byName.get("t/0")!;
    // What is still waiting for its answer each time the leader writes a batch to the partition log.
    const store = (p as unknown as { store: { append(batch: Uint8Array): void } }).store;
    const original = store.append;
    const pendingAtWrite: number[] = [];
    store.append = function (this: unknown, batch: Uint8Array) {
      pendingAtWrite.push(p.pending.size);
      return original.call(this, batch);
    };
    try {
      for (const v of ["x", "y"]) await c.produce(leader, "t", 0, [v]);
      // A read right after the answer finds both: reading the log writes what is still unwritten.
      expect(await c.readAll(leader, "t", 0)).toEqual([{ offset: 0, value: "x" }, { offset: 1, value: "y" }]);
      // The batches are durable on a majority's WAL when committed: the answer need not wait for the
      // partition log write, which comes at the end of the turn or with the next read.
      expect(pendingAtWrite).toEqual([0, 0]);
    } finally {
      store.append = original;
    }
  });

  /** Makes the partition log of `p` throw on every append from now on, as a failing disk would. */
  function failAppends(p: Partition): void {
    const store = (p as unknown as { store: { append(batch: Uint8Array): void } }).store;
    store.append = () => {
      throw new Error("simulated I/O error writing the segment");
    };
  }

  test("a batch whose partition-log write failed is answered, kept in the WAL, and served after a restart", async () => {
    // One replica: it cannot hand over, so it stays in its group with its WAL records (see below for three).
    const c = (cluster = new BrokerCluster());
    await c.start(1);
    await c.assign("t", 0, 1, [0]);
    await c.waitForLeader("t", 0);
    await c.produce(0, "t", 0, ["before"]);
    expect((await c.readAll(0, "t", 0)).length).toBe(1); // written (a read writes what is unwritten)
    const p = c.brokers[0]!.broker.byName.get("t/0")!;
    failAppends(p);
    // Committed in the WAL: answered, though this replica could not write its partition log.
    expect(Number((await c.produce(0, "t", 0, ["lost-write"])).baseOffset)).toBe(1);
    await eventually(() => p.failed !== undefined);
    // A checkpoint now must not let the WAL drop the record the partition log lacks.
    await c.brokers[0]!.broker.checkpoint(p);
    expect(p.left).toBe(false);
    await c.kill(0);
    await c.restart(0);
    await eventually(async () => (await c.readAll(0, "t", 0)).length === 2, 10_000);
    expect((await c.readAll(0, "t", 0)).map((r) => r.value)).toEqual(["before", "lost-write"]);
  });

  test("with three replicas it hands over and leaves its group; after a restart the idle group's leader sends the batch again", async () => {
    const c = await threeBrokers();
    const leader = c.leaderOf("t", 0)!;
    await c.produce(leader, "t", 0, ["before"]);
    expect((await c.readAll(leader, "t", 0)).length).toBe(1);
    const p = c.brokers[leader]!.broker.byName.get("t/0")!;
    failAppends(p);
    expect(Number((await c.produce(leader, "t", 0, ["lost-write"])).baseOffset)).toBe(1);
    await eventually(() => p.left); // handed over, then left: its WAL records for the group are dropped
    await c.kill(leader);
    await c.restart(leader);
    // Nothing is produced any more: only the new leader's heartbeats can tell it the replica is behind.
    await eventually(async () => (await c.readAll(leader, "t", 0)).length === 2, 10_000);
    expect((await c.readAll(leader, "t", 0)).map((r) => r.value)).toEqual(["before", "lost-write"]);
  });
});

describe("broker: failures", () => {
  test("killing the leader: a new leader is elected, keeps every acknowledged message, and takes new ones", async () => {
    const c = await threeBrokers();
    const old = c.leaderOf("t", 0)!;
    const acked: string[] = [];
    for (let i = 0; i < 20; i++) {
      await c.produce(old, "t", 0, [`m${i}`]);
      acked.push(`m${i}`);
    }
    await c.kill(old);
    const next = await c.waitForLeader("t", 0, 5_000);
    expect(next).not.toBe(old);
    await c.produce(next, "t", 0, ["after"]);
    acked.push("after");
    expect((await c.readAll(next, "t", 0)).map((r) => r.value)).toEqual(acked);
    // The old leader restarts from its data dir and catches up by log.
    await c.restart(old);
    await eventually(async () => (await c.readAll(old, "t", 0)).length === acked.length);
    expect((await c.readAll(old, "t", 0)).map((r) => r.value)).toEqual(acked);
  });

  test("a restarted broker keeps its partitions and data without any sentinel", async () => {
    const c = await threeBrokers();
    const leader = c.leaderOf("t", 0)!;
    for (let i = 0; i < 5; i++) await c.produce(leader, "t", 0, [`v${i}`]);
    for (const i of [0, 1, 2]) await c.kill(i);
    for (const i of [0, 1, 2]) await c.restart(i);
    const l = await c.waitForAgreement("t", 0, 5_000);
    expect((await c.readAll(l, "t", 0)).map((r) => r.value)).toEqual(["v0", "v1", "v2", "v3", "v4"]);
  });
});

/** Every applied entry compacted and checkpointed at once: a follower that misses some needs fragments. */
const COMPACTING = { compactLagEntries: 0, compactEveryEntries: 1, checkpointIntervalMs: 50, checkpointMaxAgeMs: 50 };

/**
 * Three replicas of t/0; one (`lagging`) is killed, 60 values are acknowledged without it, and the leader's
 * Raft log no longer holds the entries it lacks. The caller restarts it.
 */
async function laggingBehindCompaction(c: BrokerCluster): Promise<{ leader: number; lagging: number; acked: string[] }> {
  await c.start(3);
  await c.assign("t", 0, 1, [0, 1, 2]);
  // Every replica must name it: the first broker to call itself leader at start-up can be one whose
  // term another election is already replacing, and producing to it then finds no leader.
  const leader = await c.waitForAgreement("t", 0);
  const lagging = (leader + 1) % 3;
  await c.kill(lagging);
  const acked: string[] = [];
  for (let i = 0; i < 30; i++) {
    await c.produce(leader, "t", 0, [`f${i}a`, `f${i}b`]);
    acked.push(`f${i}a`, `f${i}b`);
  }
  // Wait until the leader's Raft log no longer holds the entries the lagging replica needs.
  const p = c.brokers[leader]!.broker.byName.get("t/0")!;
  await eventually(() => p.node.firstIndex > 10);
  return { leader, lagging, acked };
}

describe("broker: catch-up by fragment", () => {
  test("a follower that missed compacted entries pulls the leader's fragments, then follows the log", async () => {
    const c = (cluster = new BrokerCluster(COMPACTING));
    const { leader, lagging, acked } = await laggingBehindCompaction(c);
    await c.restart(lagging);
    // Pulled fragments are readable as they land; the install completes once they are durable.
    await eventually(() => c.brokers[lagging]!.broker.byName.get("t/0")!.snapshotsInstalled > 0, 10_000);
    await eventually(async () => (await c.readAll(lagging, "t", 0)).length === acked.length, 10_000);
    expect((await c.readAll(lagging, "t", 0)).map((r) => r.value)).toEqual(acked);
    // And it keeps following the log afterwards.
    await c.produce(leader, "t", 0, ["later"]);
    await eventually(async () => (await c.readAll(lagging, "t", 0)).at(-1)?.value === "later");
  });
});

describe("broker: catch-up by fragment onto a disk that cannot write", () => {
  test("the install stops retrying: the replica leaves its group, and catches up once restarted on a mended disk", async () => {
    const c = (cluster = new BrokerCluster(COMPACTING, true));
    const { leader, lagging, acked } = await laggingBehindCompaction(c);
    c.disks[lagging]!.pathContains = "/t/0/0"; // its segment files: the fragments cannot be written
    c.disks[lagging]!.writeBudgetBytes = 0;
    await c.restart(lagging);
    const p = c.brokers[lagging]!.broker.byName.get("t/0")!;
    await eventually(() => p.left);
    expect(p.installing).toBe(false);
    expect(p.failed?.message).toMatch(/disk full/i);
    expect(c.brokers[lagging]!.broker.storageError()).toMatch(/^t\/0: /);
    // The other two go on.
    await c.produce(leader, "t", 0, ["after"]);
    acked.push("after");
    await c.kill(lagging);
    c.disks[lagging]!.writeBudgetBytes = Infinity;
    await c.restart(lagging);
    // The leader still waits for the answer to the snapshot it offered before: it offers it again after
    // SNAPSHOT_STUCK_MS (10 s), as for a follower whose connection dropped during a transfer.
    await eventually(async () => (await c.readAll(lagging, "t", 0)).length === acked.length, 20_000);
    expect((await c.readAll(lagging, "t", 0)).map((r) => r.value)).toEqual(acked);
  });
});

describe("broker: memory", () => {
  test("the Raft log in memory is compacted by bytes too: a few large batches go long before 256 entries", async () => {
    cluster = new BrokerCluster({ compactEveryBytes: 64 * 1024 });
    const c = cluster;
    await c.start(3);
    await c.assign("t", 0, 1, [0, 1, 2]);
    const leader = await c.waitForAgreement("t", 0);
    const acked: string[] = [];
    for (let i = 0; i < 8; i++) {
      const v = `${i}-${"m".repeat(20_000)}`;
      await c.produce(leader, "t", 0, [v]);
      acked.push(v);
    }
    // 8 entries of 20 KB: past 64 KiB of payload, far below the entry count. Every replica drops them.
    // (Between two compaction passes, 100 ms apart, a replica may hold up to 64 KiB plus the entries
    // applied since: so the bound is awaited together with the compaction, not read at one instant.)
    for (const b of [0, 1, 2]) {
      const p = c.brokers[b]!.broker.byName.get("t/0")!;
      await eventually(() => p.node.firstIndex > 4 && p.appliedBytesInMemory < 64 * 1024, 5_000);
      expect(p.node.firstIndex).toBeGreaterThan(4);
      expect((await c.readAll(b, "t", 0)).map((r) => r.value)).toEqual(acked);
    }
  });
});

describe("broker: corruption", () => {
  test("a bit flipped in a follower's segment is detected on read, never served, and repaired from a peer", async () => {
    const c = await threeBrokers();
    const leader = c.leaderOf("t", 0)!;
    const victim = (leader + 1) % 3;
    const acked: string[] = [];
    for (let i = 0; i < 20; i++) {
      await c.produce(leader, "t", 0, [`c${i}-${"x".repeat(200)}`]);
      acked.push(`c${i}-${"x".repeat(200)}`);
    }
    await eventually(async () => (await c.readAll(victim, "t", 0)).length === acked.length);
    const { readdirSync, openSync, readSync, writeSync, closeSync } = await import("node:fs");
    const { join } = await import("node:path");
    const dir = join(c.dir, `b${victim + 1}`, "t", "0");
    const seg = readdirSync(dir).find((f) => f.endsWith(".log"))!;
    expect(seg).toBeDefined();
    // Flip one byte inside the value of the 10th record's batch (well past the first batch header).
    const fd = openSync(join(dir, seg), "r+");
    const pos = 9 * 300 + 150;
    const b = new Uint8Array(1);
    readSync(fd, b, 0, 1, pos);
    b[0]! ^= 0x40;
    writeSync(fd, b, 0, 1, pos);
    closeSync(fd);
    const err = await c.readAll(victim, "t", 0).catch((e) => e);
    expect(err).toBeInstanceOf(WireError);
    expect((err as WireError).code).toBe(ErrorCode.CORRUPT_DATA);
    // The broker repairs the range from another replica; afterwards it serves the original bytes again.
    await eventually(async () => {
      const r = await c.readAll(victim, "t", 0).catch(() => undefined);
      return r?.length === acked.length;
    });
    expect((await c.readAll(victim, "t", 0)).map((r) => r.value)).toEqual(acked);
  });
});
describe("broker: background scrub", () => {
  test("finds a bit flipped in a follower's sealed segment that nobody reads, and repairs it from a peer", async () => {
    const c = (cluster = new BrokerCluster({ scrubBytesPerS: 1024 * 1024, scrubPassIntervalMs: 200 }));
    await c.start(3);
    await c.assign("t", 0, 1, [0, 1, 2], 0, { "segment.bytes": "2048" });
    const leader = await c.waitForAgreement("t", 0);
    for (let i = 0; i < 20; i++) await c.produce(leader, "t", 0, [`s${i}`.padEnd(300, ".")]); // ~7 segments
    const part = (i: number) => c.brokers[i]!.broker.byName.get("t/0")!;
    await eventually(() => [0, 1, 2].every((i) => part(i).log.nextOffset === 20));
    const victim = (leader + 1) % 3;
    const { readdirSync, readFileSync, openSync, readSync, writeSync, closeSync } = await import("node:fs");
    const { join } = await import("node:path");
    const segment = (i: number) => join(c.dir, `b${i + 1}`, "t", "0", readdirSync(join(c.dir, `b${victim + 1}`, "t", "0")).filter((f) => f.endsWith(".log")).sort()[0]!);
    expect(readFileSync(segment(victim))).toEqual(readFileSync(segment(leader)));
    const fd = openSync(segment(victim), "r+");
    const b = new Uint8Array(1);
    readSync(fd, b, 0, 1, 150);
    b[0]! ^= 0x40;
    writeSync(fd, b, 0, 1, 150);
    closeSync(fd);
    expect(readFileSync(segment(victim))).not.toEqual(readFileSync(segment(leader)));
    // No consumer, no new replica: only the scrub reads the old segment, finds the flip and has it repaired.
    await eventually(() => part(victim).log.damagedRanges().length === 0 && readFileSync(segment(victim)).equals(readFileSync(segment(leader))), 10_000);
    const all = await c.readAll(victim, "t", 0);
    expect(all.map((r) => r.value)).toEqual(Array.from({ length: 20 }, (_, i) => `s${i}`.padEnd(300, ".")));
  });
});

describe("broker: the raft index of a log's last batch damaged on disk", () => {
  // The field lies outside the producer's checksum and the last batch has no successor to be compared
  // with, so nothing finds the flip before the restart. The replay after it must neither skip batches the
  // log lacks (index raised) nor write again batches it has (index lowered); the next append then shows
  // which header is wrong, and the peer's copy replaces it.
  for (const [name, flip] of [
    ["raised", (index: bigint) => index ^ 1024n],
    ["lowered", (index: bigint) => index & ~(1n << BigInt(index.toString(2).length - 1))],
  ] as const) {
    test(`${name}: the replica restarts, takes new writes, and its log ends byte for byte as the leader's`, async () => {
      const { c, leader, victim } = await followerKilledAfter(10, "x");
      const { readdirSync, openSync, readSync, writeSync, closeSync } = await import("node:fs");
      const dir = (i: number) => join(c.dir, `b${i + 1}`, "t", "0");
      const segment = (i: number) => join(dir(i), readdirSync(dir(i)).filter((f) => f.endsWith(".log")).sort()[0]!);
      const bytes = readFileSync(segment(victim));
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      let last = 0;
      for (let pos = 0; pos < bytes.length; pos += 20 + view.getUint32(pos + 16)) last = pos;
      const index = view.getBigInt64(last + 8);
      const flipped = flip(index);
      expect(flipped).not.toBe(index);
      const field = new Uint8Array(8);
      new DataView(field.buffer).setBigInt64(0, flipped);
      const fd = openSync(segment(victim), "r+");
      writeSync(fd, field, 0, 8, last + 8);
      const check = new Uint8Array(8);
      readSync(fd, check, 0, 8, last + 8);
      closeSync(fd);
      expect(check).toEqual(field);
      await c.restart(victim);
      await c.produce(leader, "t", 0, ["after"]);
      const p = c.brokers[victim]!.broker.byName.get("t/0")!;
      await eventually(async () => {
        const r = await c.readAll(victim, "t", 0).catch(() => undefined);
        return r?.length === 11 && p.log.damagedRanges().length === 0;
      }, 10_000);
      expect(p.failed).toBeUndefined();
      expect((await c.readAll(victim, "t", 0)).map((r) => r.value)).toEqual([...Array.from({ length: 10 }, (_, i) => `x${i}`), "after"]);
      await eventually(() => readFileSync(segment(victim)).equals(readFileSync(segment(leader))));
    });
  }
});

describe("broker: a WAL damaged in the middle", () => {
  test("the replica withholds its vote until a leader has brought it back to the commit index", async () => {
    const { c, leader, victim } = await followerKilledAfter(10, "w");
    const { readdirSync, openSync, readSync, writeSync, closeSync, statSync } = await import("node:fs");
    const { join } = await import("node:path");
    const walDir = join(c.dir, `b${victim + 1}`, ".wal");
    const files = readdirSync(walDir).filter((f) => statSync(join(walDir, f)).isFile()).sort();
    // Flip a byte inside the first record of the oldest segment (after its 32-byte header): valid records follow it.
    const fd = openSync(join(walDir, files[0]!), "r+");
    const b = new Uint8Array(1);
    readSync(fd, b, 0, 1, 52);
    b[0]! ^= 0xff;
    writeSync(fd, b, 0, 1, 52);
    closeSync(fd);
    await c.restart(victim);
    const p = c.brokers[victim]!.broker.byName.get("t/0")!;
    expect(p.voteFenced).toBe(true);
    // The leader's appends repair the log; the fence lifts once the replica reaches the leader's commit.
    await c.produce(leader, "t", 0, ["after"]);
    await eventually(() => !p.voteFenced, 10_000).catch((e) => {
      console.error("DEBUG victim", JSON.stringify(p.node.status()), p.leaderCommitSeen, "leader", JSON.stringify(c.brokers[leader]!.broker.byName.get("t/0")!.node.status()));
      throw e;
    });
    await eventually(async () => (await c.readAll(victim, "t", 0)).length === 11);
    expect((await c.readAll(victim, "t", 0)).map((r) => r.value)).toEqual([...Array.from({ length: 10 }, (_, i) => `w${i}`), "after"]);
  });
});

describe("broker: RemoveTopic", () => {
  test("removes only the incarnation it names, and is idempotent", async () => {
    const c = await threeBrokers();
    const { create } = await import("@bufbuild/protobuf");
    const { RemoveTopicRequestSchema } = await import("../../src/proto/goulette_pb");
    const { expectCase } = await import("../../src/wire");
    const remove = async (groups: bigint[]) =>
      expectCase(
        await c.pool.get(c.addresses[0]!).call({ case: "removeTopic", value: create(RemoveTopicRequestSchema, { topic: "t", allPartitions: true, groups }) }),
        "removeTopicResponse",
      );
    // A late removal of an older incarnation (group 99) must not touch the topic hosted now (group 1).
    await remove([99n]);
    expect(c.brokers[0]!.broker.byName.has("t/0")).toBe(true);
    await remove([1n]);
    expect(c.brokers[0]!.broker.byName.has("t/0")).toBe(false);
    await remove([1n]); // again: nothing left, still fine
    const { existsSync } = await import("node:fs");
    const { join } = await import("node:path");
    expect(existsSync(join(c.dir, "b1", "t", "0"))).toBe(false);
    // The topic's directory goes with its last partition, so deleted topics leave nothing behind.
    expect(existsSync(join(c.dir, "b1", "t"))).toBe(false);
  });
});

describe("broker: restart after a torn WAL tail", () => {
  test("a stored term older than the stored entries (torn between them) still starts, and the replica catches up", async () => {
    const { c, leader, victim } = await followerKilledAfter(5, "t");
    // Leave the WAL as a tear between a round's entries and its hard state would: the last hard state
    // on disk names a term older than the entries before it.
    const { Wal, parseFsyncPolicy } = await import("../../src/storage");
    const { join } = await import("node:path");
    const wal = await Wal.open({ dir: join(c.dir, `b${victim + 1}`, ".wal"), fsync: parseFsyncPolicy("always") });
    const g = wal.recovered.get(1)!;
    const lastTerm = g.entries.at(-1)!.term;
    expect(lastTerm).toBeGreaterThan(1);
    wal.setHardState(1, { term: lastTerm - 1, vote: 0, commit: g.hardState!.commit });
    await wal.sync();
    await wal.close();
    await c.restart(victim);
    await c.produce(leader, "t", 0, ["after"]);
    await eventually(async () => (await c.readAll(victim, "t", 0)).length === 6);
    expect((await c.readAll(victim, "t", 0)).map((r) => r.value)).toEqual(["t0", "t1", "t2", "t3", "t4", "after"]);
  });
});

/**
 * As if broker i had written (and acknowledged) one more record of group 1 whose bytes its disk then lost:
 * `write` adds it through the WAL, then the last `tear` bytes of the newest record are zeroed. Returns
 * the torn record's type.
 */
async function loseNewestWalRecord(c: BrokerCluster, i: number, write: (wal: Wal, g: RecoveredGroup) => void, tear: number): Promise<number> {
  const walDir = join(c.dir, `b${i + 1}`, ".wal");
  const wal = await Wal.open({ dir: walDir, fsync: parseFsyncPolicy("always") });
  write(wal, wal.recovered.get(1)!);
  await wal.sync();
  await wal.close();
  return tearNewestWalRecord(walDir, tear).type;
}

describe("broker: restart after losing the newest WAL record", () => {
  test("the replica keeps a vote floor for the lost entry, across restarts, until the commit reaches it", async () => {
    const { c, leader, victim } = await followerKilledAfter(5, "f");
    let lost = { term: 0, index: 0 };
    const type = await loseNewestWalRecord(
      c,
      victim,
      (wal, g) => {
        lost = { term: g.hardState!.term, index: g.entries.at(-1)!.index + 1 };
        wal.appendEntries(1, [{ ...lost, type: EntryType.Normal, data: new Uint8Array(40).fill(7) }]);
      },
      3,
    );
    expect(type).toBe(1); // the entry just appended

    const meta = () => JSON.parse(readFileSync(join(c.dir, `b${victim + 1}`, "t", "0", "partition.json"), "utf8"));
    await c.restart(victim);
    expect(c.brokers[victim]!.broker.byName.get("t/0")!.node.voteFloor).toEqual(lost);
    expect(meta().voteFloor).toEqual(lost);
    // Restarted again before anything settled it: the meta remembers it, whatever the WAL holds now.
    await c.kill(victim);
    await c.restart(victim);
    const p = c.brokers[victim]!.broker.byName.get("t/0")!;
    expect(p.node.voteFloor).toEqual(lost);
    // The leader commits past the lost index: settled, and gone from the meta.
    await c.produce(leader, "t", 0, ["g0", "g1"]);
    await eventually(() => p.node.voteFloor === undefined);
    await eventually(() => meta().voteFloor === undefined);
    await eventually(async () => (await c.readAll(victim, "t", 0)).length === 7);
  });

  test("a lost hard state record: the replica restarts in its term having voted, so it never votes twice in it", async () => {
    const { c, leader, victim } = await followerKilledAfter(3, "f");
    const other = (leader + 2) % 3;
    let stored = { term: 0, vote: 0, commit: 0 };
    const type = await loseNewestWalRecord(
      c,
      victim,
      (wal, g) => {
        stored = g.hardState!;
        // A vote for the third broker in a later term, alone in its round (as an election writes it).
        wal.setHardState(1, { term: stored.term + 2, vote: other + 1, commit: stored.commit });
      },
      4,
    );
    expect(type).toBe(2); // the hard state record
    await c.restart(victim);
    const p = c.brokers[victim]!.broker.byName.get("t/0")!;
    expect(p.node.term).toBeGreaterThanOrEqual(stored.term + 2);
    if (p.node.term === stored.term + 2) expect(p.node.vote).toBe(victim + 1); // taken as cast: no other vote
    // Made durable at once: restarted again, it is still in that term at least.
    await c.kill(victim);
    await c.restart(victim);
    expect(c.brokers[victim]!.broker.byName.get("t/0")!.node.term).toBeGreaterThanOrEqual(stored.term + 2);
    // The group moves on to a later term and keeps serving (an attempt that timed out may still have
    // been appended, so what is checked is that the victim holds what the leader holds, "g0" included).
    let l: number | undefined;
    await eventually(async () => {
      l = c.leaderOf("t", 0);
      if (l === undefined) return false;
      try {
        await c.produce(l, "t", 0, ["g0"]);
        return true;
      } catch {
        return false;
      }
    }, 10_000);
    const values = async (i: number) => (await c.readAll(i, "t", 0)).map((r) => r.value);
    await eventually(async () => JSON.stringify(await values(victim)) === JSON.stringify(await values(l!)), 10_000);
    expect((await values(victim)).slice(0, 4)).toEqual(["f0", "f1", "f2", "g0"]);
  });
});

describe("broker: idle groups sleep (quiescence)", () => {
  const partitionsOf = (c: BrokerCluster) => c.brokers.flatMap((b) => (b ? [b.broker.byName.get("t/0")!] : []));

  /** Heartbeats the brokers' Raft groups queue for their peers during `ms` (pings are not messages). */
  async function heartbeatsDuring(c: BrokerCluster, ms: number): Promise<number> {
    let n = 0;
    const restore: (() => void)[] = [];
    for (const b of c.brokers) {
      if (!b) continue;
      const peers = b.broker.peers;
      const queue = peers.queue.bind(peers);
      peers.queue = (group, msg) => {
        if (msg.type === MessageType.Heartbeat) n++;
        queue(group, msg);
      };
      restore.push(() => (peers.queue = queue));
    }
    await Bun.sleep(ms);
    for (const r of restore) r();
    return n;
  }

  test("an idle group stops heartbeats on every replica, wakes for a produce, and followers still serve all of it", async () => {
    const c = await threeBrokers();
    const leader = c.leaderOf("t", 0)!;
    await c.produce(leader, "t", 0, ["a"]);
    await eventually(() => partitionsOf(c).every((p) => p.quiesced));
    expect(await heartbeatsDuring(c, 300)).toBe(0);
    expect(c.leaderOf("t", 0)).toBe(leader); // nobody campaigned while it slept

    const r = await c.produce(leader, "t", 0, ["b", "c"]);
    expect(Number(r.baseOffset)).toBe(1);
    // The last heartbeat before sleeping carries the commit index: followers serve everything.
    await eventually(() => partitionsOf(c).every((p) => p.quiesced));
    for (const f of [0, 1, 2].filter((i) => i !== leader)) {
      expect((await c.readAll(f, "t", 0, ReadFrom.FOLLOWER)).map((x) => x.value)).toEqual(["a", "b", "c"]);
    }
  });

  test("status reports: nothing while a group sleeps; its counters once due, on every replica; a new leader at once", async () => {
    const c = await threeBrokers();
    const leader = c.leaderOf("t", 0)!;
    await c.produce(leader, "t", 0, ["a"]);
    // Asleep, and done applying what the last heartbeat committed (the pump runs just after it).
    const still = () => partitionsOf(c).every((p) => p.quiesced && p.appliedIndex === p.node.commitIndex && p.node.readiesInFlight === 0);
    await eventually(still);
    const brokers = c.brokers.map((b) => b!.broker);
    // Reports as a session asks for them, `ms` after the first; each taken, as a sentinel's answer does.
    const report = (i: number, ms: number, full = false) => {
      const r = brokers[i]!.statusReports.report({ full, deltas: true, nowMs: 1_000_000 + ms });
      r.taken();
      return { full: r.full, partitions: r.partitions.map((s) => `${s.topic}/${s.partition}`) };
    };
    // The first report is full (the sentinel holds none yet); then, asleep, nothing is due however often asked.
    for (const i of [0, 1, 2]) expect(report(i, 0)).toEqual({ full: true, partitions: ["t/0"] });
    for (let k = 1; k <= 30; k++) for (const i of [0, 1, 2]) expect(report(i, k * 100)).toEqual({ full: false, partitions: [] });

    await c.produce(leader, "t", 0, ["b"]);
    // Every replica's log end moves (the followers once the commit reaches them): counters only, so they
    // wait until due (a second after the last counters went out), and then every broker reports them.
    await eventually(() => partitionsOf(c).every((p) => p.log.nextOffset === 2) && still());
    for (const i of [0, 1, 2]) expect(report(i, 3_100)).toEqual({ full: false, partitions: [] });
    for (const i of [0, 1, 2]) expect(report(i, 4_000)).toEqual({ full: false, partitions: ["t/0"] });
    for (const i of [0, 1, 2]) expect(report(i, 5_000)).toEqual({ full: false, partitions: [] }); // and only once

    // A new leader (its shape: role, term, leader) goes out with the next beat, not a second later.
    const next = [0, 1, 2].find((i) => i !== leader)!;
    brokers[leader]!.byName.get("t/0")!.node.transferLeadership(next + 1);
    brokers[leader]!.markDirty(brokers[leader]!.byName.get("t/0")!);
    await eventually(() => c.leaderOf("t", 0) === next);
    for (const i of [0, 1, 2]) expect(report(i, 5_100)).toEqual({ full: false, partitions: ["t/0"] });
  });

  test("when the leader's broker dies while the group sleeps, the followers notice and elect", async () => {
    const c = await threeBrokers();
    const old = c.leaderOf("t", 0)!;
    await c.produce(old, "t", 0, ["a"]);
    await eventually(() => partitionsOf(c).every((p) => p.quiesced));
    const killedAt = performance.now();
    await c.kill(old);
    const next = await c.waitForLeader("t", 0, 5_000);
    expect(next).not.toBe(old);
    // Silence is noticed after two election timeouts (300 ms), then an election (150-300 ms) runs.
    expect(performance.now() - killedAt).toBeLessThan(2_000);
    await c.produce(next, "t", 0, ["b"]);
    expect((await c.readAll(next, "t", 0)).map((x) => x.value)).toEqual(["a", "b"]);
  });
});

describe("broker: a disk that cannot write", () => {
  /** Three brokers whose files go through c.disks[i]; t/0 (group 1) and t/1 (group 2) led by broker 0. */
  async function threeOnFaultyDisks(): Promise<BrokerCluster> {
    return startTwoPartitions((cluster = new BrokerCluster({}, true)));
  }

  test("the leader's WAL fills: DISK_FULL, it leaves its groups (a sleeping one too), the others lead, nothing acknowledged is lost", async () => {
    const c = await threeOnFaultyDisks();
    const acked: string[] = [];
    for (let i = 0; i < 20; i++) {
      await c.produce(0, "t", 0, [`a${i}`]);
      acked.push(`a${i}`);
    }
    await c.produce(0, "t", 1, ["s0"]);
    await eventually(() => c.brokers.every((b) => b!.broker.byName.get("t/1")!.quiesced));

    c.disks[0]!.pathContains = "/.wal/";
    c.disks[0]!.writeBudgetBytes = 0;
    const refused = await c.produce(0, "t", 0, ["x"]).catch((e) => e);
    expect((refused as WireError).code).toBe(ErrorCode.DISK_FULL);
    expect((refused as WireError).message).toMatch(/disk full/i);

    const next = await c.waitForLeaderOtherThan("t", 0, 0);
    const third = 3 - next;
    const y = await c.produce(next, "t", 0, ["y"]);
    await eventually(async () => (await c.readAll(third, "t", 0)).length === Number(y.baseOffset) + 1);
    const onNext = (await c.readAll(next, "t", 0)).map((r) => r.value);
    expect((await c.readAll(third, "t", 0)).map((r) => r.value)).toEqual(onNext);
    // "x" reached the followers before the leader's own WAL refused it, so the new leader may commit it.
    expect([[...acked, "y"], [...acked, "x", "y"]]).toContainEqual(onNext);

    // The failed broker stays up, serves what it stored, claims no leadership and says why it refuses.
    const failed = c.brokers[0]!.broker.byName.get("t/0")!;
    expect((await c.readAll(0, "t", 0)).map((r) => r.value)).toEqual(acked);
    expect(failed.node.role).toBe(RaftRole.Follower);
    expect(((await c.produce(0, "t", 0, ["z"]).catch((e) => e)) as WireError).code).toBe(ErrorCode.DISK_FULL);
    // A follower reader at its end would wait for data that cannot come: it is sent to another replica.
    const atEnd = (await c.fetch(0, "t", 0, acked.length, ReadFrom.FOLLOWER).catch((e) => e)) as WireError;
    expect(atEnd.code).toBe(ErrorCode.STORAGE_ERROR);
    expect(atEnd.message).toMatch(/disk full.*read from another replica/i);
    // It steps nothing any more: the new leader's appends do not pile up in its memory.
    const lastIndex = failed.node.lastIndex;
    for (let i = 0; i < 5; i++) await c.produce(next, "t", 0, [`b${i}`]);
    await Bun.sleep(300); // ten heartbeat intervals of the new leader
    expect(failed.node.lastIndex).toBe(lastIndex);

    // The sleeping group's followers heard the broker fall silent and elected one of them.
    const next1 = await c.waitForLeaderOtherThan("t", 1, 0);
    expect(Number((await c.produce(next1, "t", 1, ["s1"])).baseOffset)).toBe(1);

    // Disk space back and a restart: the broker catches up and serves everything.
    await c.kill(0);
    c.disks[0]!.writeBudgetBytes = Infinity;
    await c.restart(0);
    const all = [...onNext, "b0", "b1", "b2", "b3", "b4"];
    await eventually(async () => (await c.readAll(0, "t", 0)).length === all.length, 10_000);
    expect((await c.readAll(0, "t", 0)).map((r) => r.value)).toEqual(all);
  });

  test("a leader whose partition log cannot be written hands over at once, redirects producers, never campaigns", async () => {
    const c = await threeOnFaultyDisks();
    await c.produce(0, "t", 0, ["a"]);
    const failed = c.brokers[0]!.broker.byName.get("t/0")!;
    expect(failed.log.nextOffset).toBe(1); // "a" written to the partition log (reading `log` writes it now)
    c.disks[0]!.pathContains = "/t/0/";
    c.disks[0]!.writeBudgetBytes = 0;
    // Committed on a majority's WAL, so acknowledged; the leader's write to its partition log fails after.
    expect(Number((await c.produce(0, "t", 0, ["b"])).baseOffset)).toBe(1);
    const next = await c.waitForLeaderOtherThan("t", 0, 0);
    expect(Number((await c.produce(next, "t", 0, ["c"])).baseOffset)).toBe(2);
    expect((await c.readAll(next, "t", 0)).map((r) => r.value)).toEqual(["a", "b", "c"]);

    const redirected = (await c.produce(0, "t", 0, ["d"]).catch((e) => e)) as WireError;
    expect(redirected.code).toBe(ErrorCode.NOT_LEADER);
    expect(redirected.leaderId).toBe(next + 1);
    // Handed over, with the new leader known, it leaves the group (see the follower's case below).
    await eventually(() => failed.left);
    // Left alone, a replica whose election timer runs campaigns within 150-300 ms; this one must not.
    await c.kill(1);
    await c.kill(2);
    const until = performance.now() + 900;
    while (performance.now() < until) {
      expect(failed.node.role).toBe(RaftRole.Follower);
      await Bun.sleep(10);
    }
  });
});

describe("broker: a follower whose partition log cannot be written", () => {
  test("leaves its group: the group goes on, its WAL segments are reused, readers at its end go elsewhere, a restart rejoins with a vote floor", async () => {
    // 64 KiB WAL segments: what the test writes below fills some thirty of them.
    const c = await startTwoPartitions((cluster = new BrokerCluster({ walSegmentBytes: 64 * 1024 }, true)));
    for (let i = 0; i < 10; i++) await c.produce(0, "t", 0, [`a${i}`]);
    await eventually(async () => (await c.readAll(1, "t", 0)).length === 10);
    const b1 = c.brokers[1]!.broker;
    const failed = b1.byName.get("t/0")!;

    c.disks[1]!.pathContains = "/t/0/";
    c.disks[1]!.writeBudgetBytes = 0;
    const acked = Array.from({ length: 10 }, (_, i) => `a${i}`);
    for (let i = 0; i < 20; i++) {
      await c.produce(0, "t", 0, [`b${i}`]); // a majority is the leader and broker 2
      acked.push(`b${i}`);
    }
    await eventually(() => failed.left);
    expect(failed.failed).toBeDefined();
    expect(b1.storageError()).toMatch(/^t\/0: /);
    const lastIndex = failed.node.lastIndex;
    // The newest entry its WAL took: all it can have acknowledged (an entry it had stepped, but not yet
    // written, when it left was never answered).
    const lastWritten = b1.wal.lastIndex(failed.id.group);
    expect(lastWritten).toBeGreaterThanOrEqual(lastIndex - 1);

    // Some 2 MB through the healthy partition, which broker 1 keeps replicating and checkpointing. Had t/0
    // stayed in its group, its records (never checkpointed: the log cannot be written) would hold the
    // first WAL segment, and with it every later one.
    for (let i = 0; i < 200; i++) await c.produce(0, "t", 1, [`s${i}`.padEnd(10_000, ".")]);
    await eventually(() => b1.wal.stats().segments <= 4);
    expect(b1.wal.stats().recycledSegments).toBeGreaterThan(0);
    expect(failed.node.lastIndex).toBe(lastIndex); // it took nothing of t/0 since it left
    expect((await c.readAll(2, "t", 0)).map((r) => r.value)).toEqual(acked);

    // What it holds is served; a reader at its end is told to read elsewhere instead of waiting for ever.
    const held = await c.readAll(1, "t", 0, ReadFrom.FOLLOWER);
    expect(held.map((r) => r.value)).toEqual(acked.slice(0, held.length));
    const atEnd = await c.fetch(1, "t", 0, failed.log.nextOffset, ReadFrom.FOLLOWER).catch((e) => e);
    expect((atEnd as WireError).code).toBe(ErrorCode.STORAGE_ERROR);
    expect((atEnd as WireError).message).toMatch(/read from another replica/);
    // A second partition failing on the same broker is named too, beside the first one's error.
    c.disks[1]!.pathContains = "/t/";
    await c.produce(0, "t", 1, ["s-last"]);
    await eventually(() => b1.byName.get("t/1")!.left);
    expect(b1.storageError()).toMatch(/^t\/0: .* \(also t\/1\)$/);

    // The disk is mended and the broker restarted: the dropped entries come from the leader again, and the
    // replica does not vote (it may have acknowledged entries it no longer holds) until it has caught up.
    await c.kill(1);
    c.disks[1]!.writeBudgetBytes = Infinity;
    await c.restart(1);
    const back = c.brokers[1]!.broker.byName.get("t/0")!;
    // Votes only for logs that reach the newest entry it dropped, until the commit index does.
    expect(back.node.voteFloor?.index).toBe(lastWritten);
    expect(back.left).toBe(false);
    await c.produce(0, "t", 0, ["c"]);
    acked.push("c");
    await eventually(async () => (await c.readAll(1, "t", 0)).length === acked.length, 10_000);
    expect((await c.readAll(1, "t", 0)).map((r) => r.value)).toEqual(acked);
    await eventually(() => back.node.voteFloor === undefined);
  });

  test("two followers that dropped their entries still elect the replica that holds them all", async () => {
    // Both followers leave the group and restart on mended disks; then the leader restarts too. It holds
    // every entry, so both may vote for it; refusing every vote until a leader caught them up (a full
    // fence) left the group without a leader for ever.
    const c = await startTwoPartitions((cluster = new BrokerCluster({}, true)));
    const acked: string[] = [];
    for (let i = 0; i < 10; i++) {
      await c.produce(0, "t", 0, [`a${i}`]);
      acked.push(`a${i}`);
    }
    await eventually(async () => (await c.readAll(1, "t", 0)).length === 10 && (await c.readAll(2, "t", 0)).length === 10);
    for (const f of [1, 2]) {
      c.disks[f]!.pathContains = "/t/0/";
      c.disks[f]!.writeBudgetBytes = 0;
    }
    // Acknowledged by a majority's WAL; then both followers' partition logs fail and they leave.
    await c.produce(0, "t", 0, ["b"]);
    acked.push("b");
    await eventually(() => [1, 2].every((f) => c.brokers[f]!.broker.byName.get("t/0")!.left));
    for (const f of [1, 2]) {
      await c.kill(f);
      c.disks[f]!.writeBudgetBytes = Infinity;
      await c.restart(f);
    }
    await c.kill(0);
    await c.restart(0);
    const leader = await c.waitForLeader("t", 0, 10_000);
    expect(leader).toBe(0); // the only log that reaches both floors
    await c.produce(leader, "t", 0, ["c"]);
    acked.push("c");
    for (const f of [1, 2]) await eventually(async () => (await c.readAll(f, "t", 0)).length === acked.length, 10_000);
    for (const i of [0, 1, 2]) expect((await c.readAll(i, "t", 0)).map((r) => r.value)).toEqual(acked);
  });
});

describe("broker: a replica whose log runs past the leader's snapshot", () => {
  test("keeps the log up to the snapshot and cuts the rest, instead of emptying it", async () => {
    // The leader compacts its Raft log every 20 entries; the follower never checkpoints in this test, so
    // once it dropped its entries it restarts with none, behind the leader's first index, while its
    // partition log holds all it had applied: more than the leader's snapshot covers.
    const c = (cluster = new BrokerCluster({ compactEveryEntries: 20, compactLagEntries: 0 }, true));
    await c.start(3);
    await c.assign("t", 0, 1, [0, 1, 2]);
    expect(await c.waitForAgreement("t", 0)).toBe(0);
    const acked: string[] = [];
    const produce = async (v: string) => {
      await c.produce(0, "t", 0, [v]);
      acked.push(v);
    };
    for (let i = 0; i < 30; i++) await produce(`v${i}`);
    const leaderPart = c.brokers[0]!.broker.byName.get("t/0")!;
    await eventually(() => leaderPart.node.firstIndex > 1);
    // Fewer than 20 more: the leader's snapshot stays behind them.
    for (let i = 30; i < 40; i++) await produce(`v${i}`);
    await eventually(async () => (await c.readAll(1, "t", 0)).length === 40);
    const first = join(c.dir, "b2", "t", "0", "00000000000000000000.log");
    const born = statSync(first).birthtimeMs;
    c.disks[1]!.pathContains = "/t/0/";
    c.disks[1]!.writeBudgetBytes = 0;
    await produce("w");
    await eventually(() => c.brokers[1]!.broker.byName.get("t/0")!.left);
    await c.kill(1);
    c.disks[1]!.writeBudgetBytes = Infinity;
    await c.restart(1);
    const back = c.brokers[1]!.broker.byName.get("t/0")!;
    await eventually(() => back.snapshotsInstalled > 0, 10_000);
    await eventually(async () => (await c.readAll(1, "t", 0)).length === acked.length, 10_000);
    expect((await c.readAll(1, "t", 0)).map((r) => r.value)).toEqual(acked);
    // Kept, not emptied and pulled again from offset 0 (a reset makes its segment files anew).
    expect(statSync(first).birthtimeMs).toBe(born);
  });
});

describe("broker: a removal and a new assignment of the same partition at once", () => {
  test("the new incarnation keeps its files: the removal finishes first, then it is created", async () => {
    const c = await threeBrokers();
    for (let i = 0; i < 10; i++) await c.produce(0, "t", 0, [`a${i}`]);
    await eventually(async () => (await c.readAll(1, "t", 0)).length === 10);
    const b = c.brokers[1]!.broker;
    const dir = join(c.dir, "b2", "t", "0");
    // RemoveTopic (the sentinel moved this replica away), and at once SetTopicRole (it is made a replica
    // again, say as a failover's replacement): the removal waits on the disk part-way.
    const removal = b.removePartition("t", 0);
    const created = b.setTopicRole(
      create(SetTopicRoleRequestSchema, {
        topic: "t",
        partition: 0,
        group: 1n,
        role: WireRole.FOLLOWER,
        followers: [0, 2].map((i) => create(BrokerInfoSchema, { id: i + 1, address: c.addresses[i]! })),
        leaderId: 1,
        leaderAddress: c.addresses[0]!,
      }),
    );
    await removal;
    const p = await created;
    expect(b.byName.get("t/0")).toBe(p);
    expect(existsSync(join(dir, "partition.json"))).toBe(true);
    expect(readdirSync(dir).some((f) => f.endsWith(".log"))).toBe(true);
    // It catches up from the leader and goes on taking writes, with no storage fault.
    for (let i = 10; i < 15; i++) await c.produce(0, "t", 0, [`a${i}`]);
    await eventually(async () => (await c.readAll(1, "t", 0)).length === 15);
    expect((await c.readAll(1, "t", 0)).map((r) => r.value)).toEqual(Array.from({ length: 15 }, (_, i) => `a${i}`));
    expect(b.storageError()).toBe("");
  });
});

/** Two partitions on three brokers: t/0 holds a0..a9, t/1 holds s0, and broker 1 has them all. */
async function twoPartitionsWritten(): Promise<BrokerCluster> {
  const c = await startTwoPartitions((cluster = new BrokerCluster()));
  for (let i = 0; i < 10; i++) await c.produce(0, "t", 0, [`a${i}`]);
  await c.produce(0, "t", 1, ["s0"]);
  await eventually(async () => (await c.readAll(1, "t", 0)).length === 10 && (await c.readAll(1, "t", 1)).length === 1);
  return c;
}

describe("broker: a partition log that ends before its own snapshot", () => {
  test("is set aside, and the error says how the log lies on disk", async () => {
    const c = await twoPartitionsWritten();
    const b = c.brokers[1]!.broker;
    await b.checkpoint(b.byName.get("t/0")!); // the WAL's snapshot now counts on all ten records
    await c.kill(1);
    const { truncateSync } = await import("node:fs");
    const file = join(c.dir, "b2", "t", "0", `${"0".repeat(20)}.log`);
    truncateSync(file, statSync(file).size - 5); // the last batch torn: recovery cuts it

    await c.restart(1);
    const back = c.brokers[1]!.broker;
    expect(back.byName.has("t/0")).toBe(false);
    expect(back.storageError()).toMatch(/^t\/0 set aside: .*log ends at 9 before its snapshot \(10\); segments \[0,9\) \d+B active; damaged none$/);
    expect((await c.readAll(1, "t", 1)).map((r) => r.value)).toEqual(["s0"]); // the other partition is served
  });
});

describe("broker: an unreadable partition meta file", () => {
  test("sets that partition aside and serves the rest; assigned again, it keeps its data and votes once caught up", async () => {
    const c = await twoPartitionsWritten();
    await c.kill(1);
    const { writeFileSync } = await import("node:fs");
    writeFileSync(join(c.dir, "b2", "t", "0", "partition.json"), '{"topic":"t","partition":0,"gro');

    await c.restart(1); // refused to start at all before
    const b = c.brokers[1]!.broker;
    expect(b.byName.has("t/0")).toBe(false);
    expect(b.storageError()).toMatch(/^t\/0 set aside: .*partition\.json: JSON Parse error/);
    expect((await c.readAll(1, "t", 1)).map((r) => r.value)).toEqual(["s0"]);
    const unknown = await c.readAll(1, "t", 0).catch((e) => e);
    expect((unknown as WireError).code).toBe(ErrorCode.UNKNOWN_PARTITION);
    for (let i = 10; i < 15; i++) await c.produce(0, "t", 0, [`a${i}`]);

    // The sentinel's repair: the same assignment again. The log on disk is kept, not fetched anew.
    await c.assign("t", 0, 1, [0, 1, 2]);
    const p = b.byName.get("t/0")!;
    expect(p.log.nextOffset).toBeGreaterThanOrEqual(10);
    expect(p.voteFenced).toBe(true);
    expect(b.storageError()).toBe("");
    await eventually(async () => (await c.readAll(1, "t", 0)).length === 15);
    expect((await c.readAll(1, "t", 0)).map((r) => r.value)).toEqual(Array.from({ length: 15 }, (_, i) => `a${i}`));
    await eventually(() => !p.voteFenced);
    expect(JSON.parse(readFileSync(join(c.dir, "b2", "t", "0", "partition.json"), "utf8")).group).toBe(1);
  });
});

describe("broker: retention", () => {
  test("an altered topic config reaches the log and the meta of every replica; keep_config leaves it alone", async () => {
    const c = (cluster = new BrokerCluster({ checkpointIntervalMs: 50 }));
    await c.start(3);
    await c.assign("t", 0, 1, [0, 1, 2], 0, { "segment.bytes": "2048" });
    const leader = await c.waitForAgreement("t", 0);
    for (let i = 0; i < 40; i++) await c.produce(leader, "t", 0, [`v${i}`.padEnd(300, ".")]); // ~14 KB
    const part = (i: number) => c.brokers[i]!.broker.byName.get("t/0")!;
    const meta = (i: number) => JSON.parse(readFileSync(join(c.dir, `b${i + 1}`, "t", "0", "partition.json"), "utf8")).config;
    await eventually(() => [0, 1, 2].every((i) => part(i).log.nextOffset === 40));
    // An adopted topic's map lost the config: its SetTopicRole says to keep the replica's own.
    await c.assign("t", 0, 1, [0, 1, 2], leader, {}, true);
    for (const i of [0, 1, 2]) expect([meta(i), part(i).retains]).toEqual([{ "segment.bytes": "2048" }, false]);
    // A config change alone is reported with the next beat (a map that loses the topic adopts it back
    // with what the replicas report): it changes the status fingerprint, not only the periodic full report.
    const b0 = c.brokers[0]!.broker;
    expect(b0.status(part(0)).config).toEqual({ "segment.bytes": "2048" });
    const due = () => {
      const r = b0.statusReports.report({ full: false, deltas: true, nowMs: 0 }); // counters never due at 0
      r.taken();
      return r.partitions.map((s) => s.config);
    };
    due(); // what the sentinel holds now (a full report, the first)
    expect(due()).toEqual([]);
    await c.assign("t", 0, 1, [0, 1, 2], leader, { "segment.bytes": "2048", "segment.ms": "3600000" });
    expect(b0.status(part(0)).config).toEqual({ "segment.bytes": "2048", "segment.ms": "3600000" });
    expect(due()).toEqual([{ "segment.bytes": "2048", "segment.ms": "3600000" }]);
    await c.assign("t", 0, 1, [0, 1, 2], leader, { "segment.bytes": "2048", "retention.bytes": "4096" });
    for (const i of [0, 1, 2]) expect([meta(i), part(i).retains]).toEqual([{ "segment.bytes": "2048", "retention.bytes": "4096" }, true]);
    await eventually(() => [0, 1, 2].every((i) => part(i).log.logStartOffset > 0 && part(i).log.sizeBytes <= 4096 + 2048));
    // A restarted replica opens its log with the altered config.
    const f = (leader + 1) % 3;
    await c.kill(f);
    await c.restart(f);
    expect(part(f).retains).toBe(true);
  });


  test("every replica drops its old segments, only below a checkpoint, so a restarted one recovers and follows", async () => {
    const c = (cluster = new BrokerCluster({ checkpointIntervalMs: 50 }));
    await c.start(3);
    await c.assign("t", 0, 1, [0, 1, 2], 0, { "segment.bytes": "2048", "retention.bytes": "4096" });
    const leader = await c.waitForAgreement("t", 0);
    for (let i = 0; i < 40; i++) await c.produce(leader, "t", 0, [`v${i}`.padEnd(300, ".")]); // ~14 KB
    const part = (i: number) => c.brokers[i]!.broker.byName.get("t/0")!;
    const trimmed = (i: number) => part(i).log.logStartOffset > 0 && part(i).log.sizeBytes <= 4096 + 2048 && part(i).log.nextOffset === 40;
    await eventually(() => [0, 1, 2].every(trimmed));
    for (const i of [0, 1, 2]) expect(part(i).snapshotIndex).toBeGreaterThan(0); // checkpointed first (default age: 60 s)
    // Restarted on a log that no longer starts at 0, the replica rebuilds its state from the WAL's snapshot
    // (before, it replayed every entry from the new log start and stopped: "log behind state").
    const f = (leader + 1) % 3;
    await c.kill(f);
    await c.restart(f);
    expect(part(f).failed).toBeUndefined();
    await c.produce(leader, "t", 0, ["after"]);
    await eventually(() => part(f).log.nextOffset === 41);
    expect(part(f).failed).toBeUndefined();
    const start = part(f).log.logStartOffset;
    const { decodeBatch, splitBatches } = await import("../../src/wire/batch");
    const tail = [...splitBatches(part(f).log.read(40, 1 << 20).records)].flatMap((b) => decodeBatch(b));
    expect(tail.map((r) => `${r.offset}:${new TextDecoder().decode(r.value)}`)).toEqual(["40:after"]);
    const first = [...splitBatches(part(f).log.read(start, 1 << 20).records)].flatMap((b) => decodeBatch(b))[0]!;
    expect(new TextDecoder().decode(first.value)).toBe(`v${start}`.padEnd(300, "."));
  });
});

describe("broker: a lone replica whose partition log cannot be written", () => {
  test("a lone replica (RF1) keeps its entries but not the WAL's oldest segment: they are written again at its head", async () => {
    // A lone replica cannot leave and drop its entries: nothing else holds them. Held in place, its first
    // unreleased entry would keep the first WAL segment, and with it every later one.
    // No timed checkpoints: r/0's entries are unreleased when its disk fails (s/0 is checkpointed when it
    // holds the oldest WAL segment, as any partition is).
    const c = (cluster = new BrokerCluster({ walSegmentBytes: 64 * 1024, checkpointIntervalMs: 3_600_000 }, true));
    await c.start(1);
    await c.assign("r", 0, 1, [0]);
    await c.assign("s", 0, 2, [0]);
    await c.waitForLeader("r", 0);
    await c.waitForLeader("s", 0);
    const acked: string[] = [];
    for (let i = 0; i < 10; i++) {
      await c.produce(0, "r", 0, [`a${i}`.padEnd(2_000, ".")]);
      acked.push(`a${i}`.padEnd(2_000, "."));
    }
    const b = c.brokers[0]!.broker;
    const failed = b.byName.get("r/0")!;
    c.disks[0]!.pathContains = "/r/0/";
    c.disks[0]!.writeBudgetBytes = 0;
    // Refused from now on (the failed write may be this record's own, after it reached the WAL: then it
    // comes back after a restart, as a Kafka producer's failed send may have landed).
    const maybe = (await c.produce(0, "r", 0, ["b0"]).catch((e) => e)) as WireError;
    expect(maybe.code).toBe(ErrorCode.DISK_FULL);
    await eventually(() => failed.failed !== undefined);
    expect(((await c.produce(0, "r", 0, ["b1"]).catch((e) => e)) as WireError).code).toBe(ErrorCode.DISK_FULL);
    const lastIndex = failed.node.lastIndex;

    // Some 2 MB through the healthy partition: about thirty segments of 64 KiB.
    for (let i = 0; i < 200; i++) await c.produce(0, "s", 0, [`s${i}`.padEnd(10_000, ".")]);
    await eventually(() => b.wal.stats().segments <= 4);
    expect(b.wal.stats().recycledSegments).toBeGreaterThan(10);
    expect(failed.left).toBe(false);

    // The disk mended and the broker restarted: every acknowledged record of r/0 is there.
    await c.kill(0);
    c.disks[0]!.writeBudgetBytes = Infinity;
    await c.restart(0);
    await c.waitForLeader("r", 0);
    // Its WAL still held every entry past the release point: they were moved, not let go.
    const kept = c.brokers[0]!.broker.wal.recovered.get(1)!;
    const from = Math.max(kept.released, kept.snapshot?.index ?? 0) + 1;
    expect(kept.entries.length).toBeGreaterThanOrEqual(10);
    expect(kept.entries.map((e) => e.index)).toEqual(Array.from({ length: lastIndex - from + 1 }, (_, i) => from + i));
    const got = (await c.readAll(0, "r", 0)).map((r) => r.value);
    expect([acked, [...acked, "b0"]]).toContainEqual(got);
    expect(Number((await c.produce(0, "r", 0, ["c"])).baseOffset)).toBe(got.length);
    expect((await c.readAll(0, "s", 0)).length).toBe(200);
  });
});
