import { describe, expect, test } from "bun:test";
import {
  BATCH_HEADER_BYTES,
  decodeBatch,
  encodeBatch,
  readBatchHeader,
  splitBatches,
  stampBatch,
  verifyBatch,
} from "../../src/wire/batch";

const text = (b: Uint8Array | undefined) => (b === undefined ? undefined : new TextDecoder().decode(b));

function sample(): Uint8Array {
  return encodeBatch({
    producerId: 42,
    producerEpoch: 3,
    baseSequence: 100,
    records: [
      { key: "k1", value: "v1", timestampMs: 1_700_000_000_000, headers: [{ key: "h", value: "x" }] },
      { value: new Uint8Array([0, 1, 2]), timestampMs: 1_700_000_000_500 },
      { key: new Uint8Array(0), value: "", timestampMs: 1_700_000_000_100 },
    ],
  });
}

describe("record batch", () => {
  test("round trip: header fields, records, keys, headers, timestamps", () => {
    const b = sample();
    expect(verifyBatch(b)).toBeUndefined();
    const h = readBatchHeader(b);
    expect(h).toMatchObject({
      baseOffset: 0,
      raftIndex: 0,
      batchLength: b.length - 20,
      magic: 1,
      attributes: 0,
      recordCount: 3,
      firstTimestampMs: 1_700_000_000_000,
      maxTimestampMs: 1_700_000_000_500,
      producerId: 42,
      producerEpoch: 3,
      baseSequence: 100,
    });
    const rs = decodeBatch(b);
    expect(rs.map((r) => r.offset)).toEqual([0, 1, 2]);
    expect(text(rs[0]!.key)).toBe("k1");
    expect(text(rs[0]!.value)).toBe("v1");
    expect(rs[0]!.headers.map((x) => [x.key, text(x.value)])).toEqual([["h", "x"]]);
    expect(rs[1]!.key).toBeUndefined();
    expect([...rs[1]!.value]).toEqual([0, 1, 2]);
    expect(rs[1]!.timestampMs).toBe(1_700_000_000_500);
    expect(rs[2]!.key?.length).toBe(0);
    expect(rs[2]!.value.length).toBe(0);
  });

  test("several headers on any record, string and byte values, records without headers between them", () => {
    const b = encodeBatch({
      records: [
        { value: "a" },
        { value: "b", headers: [{ key: "h1", value: "x" }, { key: "ü2", value: new Uint8Array([7, 8]) }, { key: "", value: "" }] },
        { value: "c", headers: [] },
        { key: "k", value: "d", headers: [{ key: "only", value: "y".repeat(300) }] },
      ],
    });
    expect(verifyBatch(b)).toBeUndefined();
    const rs = decodeBatch(b);
    expect(rs.map((r) => [text(r.key), text(r.value), r.headers.map((h) => [h.key, [...h.value]])])).toEqual([
      [undefined, "a", []],
      [undefined, "b", [["h1", [120]], ["ü2", [7, 8]], ["", []]]],
      [undefined, "c", []],
      ["k", "d", [["only", Array.from({ length: 300 }, () => 121)]]],
    ]);
  });

  test("stamping offsets keeps the crc valid and shifts record offsets", () => {
    const b = sample();
    stampBatch(b, 2 ** 40 + 7, 99);
    expect(verifyBatch(b)).toBeUndefined();
    const h = readBatchHeader(b);
    expect(h.baseOffset).toBe(2 ** 40 + 7);
    expect(h.raftIndex).toBe(99);
    expect(decodeBatch(b).map((r) => r.offset)).toEqual([2 ** 40 + 7, 2 ** 40 + 8, 2 ** 40 + 9]);
  });

  test("every single flipped bit in the crc-covered part is detected", () => {
    const b = sample();
    for (let i = 24; i < b.length; i++) {
      for (const bit of [0, 7]) {
        const c = b.slice();
        c[i]! ^= 1 << bit;
        expect(verifyBatch(c)).toBeString();
        expect(() => decodeBatch(c)).toThrow(/corrupt batch/);
      }
    }
  });

  test("truncated or extended batches are rejected", () => {
    const b = sample();
    for (const n of [0, 10, 19, 20, BATCH_HEADER_BYTES - 1, BATCH_HEADER_BYTES, b.length - 1]) {
      expect(verifyBatch(b.subarray(0, n))).toBeString();
    }
    const longer = new Uint8Array(b.length + 1);
    longer.set(b);
    expect(verifyBatch(longer)).toMatch(/length/);
  });

  test("a batch with a valid crc but lying record lengths is rejected", () => {
    const b = sample();
    const v = new DataView(b.buffer);
    v.setUint32(BATCH_HEADER_BYTES, 0xfffffff0); // first record's length
    v.setUint32(20, Bun.hash.crc32(b.subarray(24)));
    expect(verifyBatch(b)).toMatch(/record 0/);
    const c = sample();
    new DataView(c.buffer).setUint32(26, 4); // one record more than present
    new DataView(c.buffer).setUint32(20, Bun.hash.crc32(c.subarray(24)));
    expect(verifyBatch(c)).toMatch(/record 3/);
  });

  test("splitBatches iterates concatenated batches as views and rejects a truncated tail", () => {
    const a = sample();
    const b = encodeBatch({ records: [{ value: "x" }] });
    stampBatch(b, 3, 2);
    const all = new Uint8Array(a.length + b.length);
    all.set(a);
    all.set(b, a.length);
    const parts = [...splitBatches(all)];
    expect(parts.length).toBe(2);
    expect(parts[1]!.buffer).toBe(all.buffer);
    expect(parts.map((p) => verifyBatch(p))).toEqual([undefined, undefined]);
    expect(decodeBatch(parts[1]!)[0]!.offset).toBe(3);
    expect([...splitBatches(new Uint8Array(0))]).toEqual([]);
    expect(() => [...splitBatches(all.subarray(0, all.length - 1))]).toThrow(/truncated/);
    expect(() => [...splitBatches(all.subarray(0, 10))]).toThrow(/truncated/);
  });

  test("encodeBatch refuses bad input", () => {
    expect(() => encodeBatch({ records: [] })).toThrow();
    expect(() => encodeBatch({ records: [{ value: "a", timestampMs: -1 }] })).toThrow();
    expect(() => encodeBatch({ producerId: -5, records: [{ value: "a" }] })).toThrow();
  });

  test("seeded random batches round trip", () => {
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let t = 0; t < 200; t++) {
      const records = Array.from({ length: 1 + rnd(20) }, () => ({
        key: rnd(2) ? undefined : new Uint8Array(rnd(30)).map(() => rnd(256)),
        value: new Uint8Array(rnd(300)).map(() => rnd(256)),
        headers: Array.from({ length: rnd(3) }, (_, i) => ({ key: `h${i}`, value: new Uint8Array(rnd(10)) })),
        timestampMs: 1_000_000 + rnd(100_000),
      }));
      const b = encodeBatch({ producerId: rnd(1000), records });
      expect(verifyBatch(b)).toBeUndefined();
      const out = decodeBatch(b);
      expect(out.length).toBe(records.length);
      out.forEach((r, i) => {
        expect(r.key === undefined ? undefined : [...r.key]).toEqual(records[i]!.key === undefined ? undefined : [...records[i]!.key!]);
        expect([...r.value]).toEqual([...records[i]!.value]);
        expect(r.timestampMs).toBe(records[i]!.timestampMs);
        expect(r.headers.length).toBe(records[i]!.headers.length);
      });
    }
  });
});
