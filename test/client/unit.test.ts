import { describe, expect, test } from "bun:test";
import { Partitioner, TURN_LIMIT, keyPartition } from "../../src/client/partitioner";
import { SequenceNumbers } from "../../src/client/sequence";
import { backoffMs } from "../../src/client/backoff";
import { decodeRecords, encodeRecords, recordBytes, toBytes } from "../../src/client/records";
import { stampBatch } from "../../src/wire/batch";

describe("partitioner", () => {
  test("the same key always maps to the same partition, within range", () => {
    const p = new Partitioner();
    for (const k of ["a", "user-17", "", "☃"]) {
      const first = p.partition(toBytes(k), 7);
      expect(first).toBeGreaterThanOrEqual(0);
      expect(first).toBeLessThan(7);
      for (let i = 0; i < 5; i++) expect(p.partition(toBytes(k), 7)).toBe(first);
      expect(keyPartition(toBytes(k), 7)).toBe(first);
    }
  });

  test("keys spread over partitions", () => {
    const seen = new Set<number>();
    for (let i = 0; i < 200; i++) seen.add(keyPartition(toBytes(`key-${i}`), 8));
    expect(seen.size).toBe(8);
  });

  const turnEnds = () => new Promise<void>((resolve) => setImmediate(resolve));

  test("keyless messages fill one partition for stickyBytes, then the next turn moves to the next, round-robin", async () => {
    const p = new Partitioner(1000);
    // One 300-byte message per turn: three fit in 1000 bytes, the fourth turn starts the next partition.
    const picks: number[] = [];
    for (let i = 0; i < 13; i++) {
      picks.push(p.partition(undefined, 3, 300));
      await turnEnds();
    }
    expect(picks).toEqual([0, 0, 0, 1, 1, 1, 2, 2, 2, 0, 0, 0, 1]);
    // A turn's records all stay with its partition past stickyBytes (here 1,500 bytes on one partition),
    // rather than spilling the last few into a batch of their own for another leader.
    const q = new Partitioner(1000);
    expect(Array.from({ length: 5 }, () => q.partition(undefined, 3, 300))).toEqual([0, 0, 0, 0, 0]);
    await turnEnds();
    expect(q.partition(undefined, 3, 300)).toBe(1);
    // A message larger than stickyBytes still goes somewhere, alone in its turn.
    const r = new Partitioner(1000);
    expect(r.partition(undefined, 2, 5000)).toBe(0);
    await turnEnds();
    expect(r.partition(undefined, 2, 5000)).toBe(1);
    await turnEnds();
    expect(r.partition(undefined, 2, 10)).toBe(0);
  });

  test("within one long turn the partition still moves after TURN_LIMIT x stickyBytes", () => {
    const p = new Partitioner(1000);
    const per = (TURN_LIMIT * 1000) / 100;
    const picks = Array.from({ length: 3 * per }, () => p.partition(undefined, 3, 100));
    expect(picks).toEqual([...Array(per).fill(0), ...Array(per).fill(1), ...Array(per).fill(2)]);
  });

  test("over many turns every partition gets the same share", async () => {
    const p = new Partitioner(4096);
    const counts = new Array(5).fill(0);
    for (let t = 0; t < 2_000; t++) {
      for (let i = 0; i < 3; i++) counts[p.partition(undefined, 5, 1024)]++;
      await turnEnds();
    }
    expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(6);
  });

  test("given each partition's load, a new keyless turn goes to the least loaded one, ties round-robin", async () => {
    const p = new Partitioner(1000);
    const load = [0, 0, 0, 0];
    // One turn of two 600-byte messages per pick (1,200 bytes: the next turn moves on).
    const pick = async () => {
      const a = p.partition(undefined, 4, 600, (i) => load[i]!);
      const b = p.partition(undefined, 4, 600, (i) => load[i]!);
      expect(b).toBe(a);
      load[a]! += 1200;
      await turnEnds();
      return a;
    };
    // Equal loads: plain round-robin.
    expect([await pick(), await pick(), await pick()]).toEqual([0, 1, 2]);
    // Partition 3 is empty: its turn comes next; then partition 1 is the only one drained (acknowledged).
    expect(await pick()).toBe(3);
    load[1] = 0;
    expect(await pick()).toBe(1);
    // A partition with a long queue is skipped while others have less.
    load.splice(0, 4, 5000, 1200, 1200, 1200);
    expect([await pick(), await pick(), await pick()]).toEqual([2, 3, 1]);
    // Within a turn, the partition does not change whatever the loads.
    const q = new Partitioner(1000);
    expect([q.partition(undefined, 2, 400, () => 0), q.partition(undefined, 2, 400, (i) => (i === 0 ? 9999 : 0))]).toEqual([0, 0]);
  });

  test("rejects a partition count below one", () => {
    expect(() => new Partitioner().partition(undefined, 0)).toThrow(/partition count/);
  });
});

describe("sequence numbers", () => {
  test("each batch takes the next range, per partition", () => {
    const s = new SequenceNumbers();
    expect(s.take("t", 0, 5)).toBe(0);
    expect(s.take("t", 0, 3)).toBe(5);
    expect(s.take("t", 1, 2)).toBe(0);
    expect(s.take("u", 0, 1)).toBe(0);
    expect(s.peek("t", 0)).toBe(8);
  });

  test("wraps at 2^32 like the uint32 on the wire", () => {
    const s = new SequenceNumbers();
    s.take("t", 0, 2 ** 32 - 2);
    expect(s.take("t", 0, 4)).toBe(2 ** 32 - 2);
    expect(s.peek("t", 0)).toBe(2);
  });

  test("a batch holds at least one record", () => {
    expect(() => new SequenceNumbers().take("t", 0, 0)).toThrow();
  });
});

describe("backoff", () => {
  test("grows and stays under its cap", () => {
    expect(backoffMs(0, 20, 1000, () => 0)).toBe(10);
    expect(backoffMs(3, 20, 1000, () => 1)).toBe(160);
    expect(backoffMs(30, 20, 1000, () => 1)).toBe(1000);
  });
});

describe("records", () => {
  test("encode then decode keeps keys, values, headers and offsets", () => {
    const recs = [
      { key: toBytes("k1"), value: toBytes("v1"), headers: [{ key: "h", value: toBytes("x") }], timestampMs: 1000 },
      { key: undefined, value: toBytes(""), headers: [], timestampMs: 1005 },
    ];
    const b = encodeRecords(recs, { producerId: 7, producerEpoch: 1, baseSequence: 3 });
    expect(b.length).toBe(60 + recs.reduce((n, r) => n + recordBytes(r), 0));
    stampBatch(b, 40, 1);
    const second = encodeRecords([{ key: undefined, value: toBytes("v3"), headers: [], timestampMs: 2000 }], { producerId: 0, producerEpoch: 0, baseSequence: 0 });
    stampBatch(second, 42, 2);
    const both = new Uint8Array(b.length + second.length);
    both.set(b);
    both.set(second, b.length);
    const out = decodeRecords(both);
    const dec = new TextDecoder();
    expect(out.map((r) => [r.offset, r.key && dec.decode(r.key), dec.decode(r.value), r.timestampMs])).toEqual([
      [40, "k1", "v1", 1000],
      [41, undefined, "", 1005],
      [42, undefined, "v3", 2000],
    ]);
    expect(out[0]!.headers.map((h) => [h.key, dec.decode(h.value)])).toEqual([["h", "x"]]);
    // A batch cut short at the end (a fetch limited by bytes) is left for the next fetch.
    expect(decodeRecords(both.subarray(0, both.length - 3)).map((r) => r.offset)).toEqual([40, 41]);
  });

  test("a corrupt batch throws rather than yield wrong records", () => {
    const b = encodeRecords([{ key: undefined, value: toBytes("hello"), headers: [], timestampMs: 1 }], { producerId: 0, producerEpoch: 0, baseSequence: 0 });
    b[b.length - 3]! ^= 0xff;
    expect(() => decodeRecords(b)).toThrow(/crc/);
  });
});
