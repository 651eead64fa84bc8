// Batch memory reuse: the pool hands back memory it was given, within bounds, and a batch encoded into
// reused (dirty) memory is byte for byte the batch encoded into fresh memory.
import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { ErrorCode, ProduceResponseSchema } from "../../src/proto/goulette_pb";
import { protoError } from "../../src/wire/errors";
import { BufferPool, POOL_MIN_BYTES } from "../../src/client/buffer-pool";
import { Producer } from "../../src/client/index";
import { decodeBatch, encodeBatch, readBatchHeader, verifyBatch } from "../../src/wire/batch";
import { FakeBroker, FakeSentinel, cleanupAfterEach } from "./fakes";

describe("buffer pool", () => {
  test("memory given back is taken again, at the size asked", () => {
    const pool = new BufferPool(1 << 20);
    const a = pool.take(100_000);
    expect(a.length).toBe(100_000);
    pool.give(a);
    expect(pool.pooledBytes).toBe(a.buffer.byteLength);
    const b = pool.take(90_000);
    expect(b.buffer).toBe(a.buffer);
    expect(b.length).toBe(90_000);
    expect(pool.pooledBytes).toBe(0);
    expect(pool.take(90_000).buffer).not.toBe(a.buffer); // taken: a new one
  });

  test("a buffer more than twice the size is not used for a small batch", () => {
    const pool = new BufferPool(4 << 20);
    const big = pool.take(1 << 20);
    pool.give(big);
    expect(pool.take(POOL_MIN_BYTES + 10).buffer).not.toBe(big.buffer);
    expect(pool.take((1 << 20) - 1000).buffer).toBe(big.buffer);
  });

  test("bounded, small sizes from the heap, foreign memory ignored", () => {
    const pool = new BufferPool(256 * 1024);
    const xs = [pool.take(200_000), pool.take(200_000)];
    for (const x of xs) pool.give(x);
    expect(pool.pooledBytes).toBeLessThanOrEqual(256 * 1024);
    expect(pool.pooledBytes).toBeGreaterThan(0);
    const small = pool.take(1000);
    expect(small.buffer.byteLength).toBe(1000);
    const before = pool.pooledBytes;
    pool.give(small);
    pool.give(new Uint8Array(new ArrayBuffer(POOL_MIN_BYTES * 2), 1)); // a view not at the start
    pool.give(new Uint8Array(100_000)); // not a capacity the pool made
    expect(pool.pooledBytes).toBe(before);
    pool.give(xs[0]!); // twice: kept once
    expect(pool.pooledBytes).toBe(before);
  });
});

test("a batch encoded into dirty memory equals one encoded into fresh memory", () => {
  const input = {
    producerId: 7,
    producerEpoch: 2,
    baseSequence: 40,
    records: [
      { key: "k", value: new Uint8Array(70_000).fill(3), headers: [{ key: "h", value: "v" }], timestampMs: 1_700_000_000_000 },
      { value: "second", timestampMs: 1_700_000_000_005 },
    ],
  };
  const fresh = encodeBatch(input);
  const dirty = encodeBatch(input, (n) => new Uint8Array(new ArrayBuffer(n + 64 * 1024), 0, n).fill(0xff));
  expect(verifyBatch(dirty)).toBeUndefined();
  expect(readBatchHeader(dirty).baseOffset).toBe(0);
  expect(Buffer.from(dirty).equals(Buffer.from(fresh))).toBe(true);
  expect(decodeBatch(dirty).map((r) => r.value.length)).toEqual([70_000, 6]);
});

describe("producer batch memory", () => {
  const { stops, track } = cleanupAfterEach();

  test("a batch sent more than once is not reused (an earlier copy may still be queued)", async () => {
    const s = track(new FakeSentinel("t"));
    const b = track(new FakeBroker(1));
    s.leaders.set(0, b.info);
    s.replicas = [b.info];
    let refused = 0;
    b.onProduce = () =>
      refused++ === 0
        ? { case: "produceResponse", value: create(ProduceResponseSchema, { error: protoError(ErrorCode.LEADER_NOT_AVAILABLE, "electing") }) }
        : undefined;
    const p = new Producer({ sentinels: [s.address] });
    stops.push(() => p.close());
    await p.send("t", [{ value: new Uint8Array(100_000).fill(1), partition: 0 }]);
    expect(b.produced.length).toBe(2);
    expect(p.batchMemory!.pooledBytes).toBe(0);
    await p.send("t", [{ value: new Uint8Array(100_000).fill(2), partition: 0 }]); // sent once: given back
    expect(p.batchMemory!.pooledBytes).toBeGreaterThan(0);
  });

  test("batches reuse answered memory, and every batch the broker gets holds its own records", async () => {
    const s = track(new FakeSentinel("t"));
    const b = track(new FakeBroker(1));
    s.leaders.set(0, b.info);
    s.replicas = [b.info];
    const p = new Producer({ sentinels: [s.address], maxInFlightBatches: 2 });
    stops.push(() => p.close());
    const value = (i: number) => new Uint8Array(40_000).fill(i & 0xff);
    // Rounds of four 40 KB records (two batches of 160 KB each time): later rounds reuse the first's memory.
    for (let round = 0; round < 6; round++) {
      await Promise.all(Array.from({ length: 4 }, (_, j) => p.send("t", [{ value: value(round * 4 + j), partition: 0 }])));
    }
    expect(p.batchMemory!.pooledBytes).toBeGreaterThan(0);
    const got = b.batches.flatMap((x) => decodeBatch(x).map((r) => r.value));
    expect(got.length).toBe(24);
    got.forEach((v, i) => {
      expect(v.length).toBe(40_000);
      expect(v.every((x) => x === (i & 0xff))).toBe(true);
    });
  });
});
