import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, readdirSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { StorageError } from "../../src/storage/errors";
import { FaultyFileLayer } from "../../src/storage/file-layer";
import { PartitionLog } from "../../src/storage/partition-log";
import { batchRun, concat, makeBatch } from "./batches";
import { removeTempDirs, tempDir } from "./helpers";

afterEach(removeTempDirs);
function dir(): string {
  const t = tempDir();
  return join(t.dir, "topic", "0");
}

function errorOf(f: () => unknown): StorageError {
  try {
    f();
  } catch (e) {
    if (e instanceof StorageError) return e;
    throw e;
  }
  throw new Error("expected a StorageError");
}

const small = { segmentBytes: 2048, indexIntervalBytes: 300 };

describe("PartitionLog", () => {
  test("append and read whole batches by offset, from any record inside a batch", async () => {
    const p = await PartitionLog.open({ dir: dir(), ...small });
    const bs = batchRun(0, 1, 50, 3, 100);
    for (const b of bs) p.append(b);
    expect(p.nextOffset).toBe(150);
    expect(p.appliedIndex).toBe(50);
    expect(p.segmentCount).toBeGreaterThan(3);
    for (let offset = 0; offset < 150; offset++) {
      const r = p.read(offset, 1);
      const k = Math.floor(offset / 3);
      expect(r.records).toEqual(bs[k]!);
      expect(r.nextOffset).toBe(k * 3 + 3);
    }
    const many = p.read(24, 500); // 12 batches of 3 records per 2 KiB segment: offsets 0..35 in the first
    expect(many.records).toEqual(concat(bs.slice(8, 11)));
    expect(many.nextOffset).toBe(33);
    expect(p.read(30, 500).records).toEqual(concat(bs.slice(10, 12))); // stops at the segment's end
    expect(p.read(150, 100)).toEqual({ records: new Uint8Array(0), nextOffset: 150 });
    await p.close();
  });

  test("offsets outside the log are OFFSET_OUT_OF_RANGE with earliest and latest", async () => {
    const p = await PartitionLog.open({ dir: dir(), ...small });
    for (const b of batchRun(0, 1, 3)) p.append(b);
    const e = errorOf(() => p.read(7, 100));
    expect(e.code).toBe("OFFSET_OUT_OF_RANGE");
    expect(e.details).toEqual({ earliest: 0, latest: 6 });
    await p.close();
  });

  test("append refuses a batch at the wrong offset or with a bad checksum", async () => {
    const p = await PartitionLog.open({ dir: dir(), ...small });
    expect(() => p.append(makeBatch({ baseOffset: 5, raftIndex: 1 }))).toThrow(/baseOffset 5 != nextOffset 0/);
    const bad = makeBatch({ baseOffset: 0, raftIndex: 1 });
    bad[70]! ^= 1;
    expect(errorOf(() => p.append(bad)).code).toBe("CORRUPT_DATA");
    await p.close();
  });

  test("an append whose raft index is not above the last batch's marks that batch damaged, and is kept", async () => {
    const d = dir();
    const bs = batchRun(0, 1, 4); // raft indexes 1..4, offsets 0..7
    // The last batch as a flipped bit would leave it on disk: raft index 4 + 1024.
    const flipped = bs[3]!.slice();
    new DataView(flipped.buffer).setBigInt64(8, 1028n);
    const p = await PartitionLog.open({ dir: d, ...small });
    for (const b of [...bs.slice(0, 3), flipped]) p.append(b);
    expect(p.appliedIndex).toBe(1028);
    expect(p.damagedRanges()).toEqual([]);
    const next = makeBatch({ baseOffset: 8, raftIndex: 5, recordCount: 2 });
    p.append(next);
    // Exactly the last stored batch is refused until repaired; the new one is served.
    expect(p.damagedRanges().map((r) => [r.fromOffset, r.toOffset])).toEqual([[6, 8]]);
    expect(errorOf(() => p.read(6, 1000)).code).toBe("CORRUPT_DATA");
    expect(p.read(8, 1000).records).toEqual(next);
    expect(p.appliedIndex).toBe(5);
    // The peer's copy replaces it.
    p.repair(6, bs[3]!, Bun.hash.crc32(bs[3]!));
    expect(p.damagedRanges()).toEqual([]);
    expect(p.read(6, 1000).records).toEqual(concat([bs[3]!, next]));
    await p.close();
  });

  test("that check keeps the append when the walk to the last batch meets other damage first", async () => {
    const d = dir();
    const bs = batchRun(0, 1, 4); // 160-byte batches at positions 0, 160, 320, 480
    const flipped = bs[3]!.slice();
    new DataView(flipped.buffer).setBigInt64(8, 1028n);
    const p = await PartitionLog.open({ dir: d, segmentBytes: 2048, indexIntervalBytes: 1 << 20 }); // no index entry past the first
    for (const b of [...bs.slice(0, 3), flipped]) p.append(b);
    // The second batch's offset field (also outside the checksum) damaged on disk: the walk from the
    // segment's start to the last batch stops there.
    const file = join(d, readdirSync(d).find((n) => n.endsWith(".log"))!);
    const bytes = readFileSync(file);
    new DataView(bytes.buffer, bytes.byteOffset).setBigInt64(160, 77n);
    writeFileSync(file, bytes);
    const next = makeBatch({ baseOffset: 8, raftIndex: 5, recordCount: 2 });
    p.append(next);
    // Recorded by the walk, up to the next known-good position (here the segment's end before the append).
    expect(p.damagedRanges().map((r) => [r.fromOffset, r.toOffset])).toEqual([[2, 8]]);
    expect(p.nextOffset).toBe(10);
    expect(p.appliedIndex).toBe(5);
    await p.close();
  });

  test("sealed segments get indexes; reopen uses them, and rebuilds missing or damaged ones", async () => {
    const d = dir();
    const p = await PartitionLog.open({ dir: d, ...small });
    const bs = batchRun(0, 1, 60, 2, 100);
    for (const b of bs) p.append(b);
    expect(await p.flush()).toBe(60);
    await p.close();
    const idx = readdirSync(d).filter((n) => n.endsWith(".index")).sort();
    expect(idx.length).toBe(readdirSync(d).filter((n) => n.endsWith(".log")).length - 1);
    unlinkSync(join(d, idx[0]!));
    const t = join(d, idx[1]!.replace(".index", ".timeindex"));
    const tb = readFileSync(t);
    tb[tb.length - 1]! ^= 0xff;
    writeFileSync(t, tb);
    const logs: string[] = [];
    const q = await PartitionLog.open({ dir: d, ...small, log: (_l, m) => logs.push(m) });
    expect(logs.filter((m) => m.includes("rebuilt")).length).toBe(2);
    expect(existsSync(join(d, idx[0]!))).toBe(true);
    for (let o = 0; o < 120; o++) expect(q.read(o, 1).records).toEqual(bs[o >> 1]!);
    expect(q.nextOffset).toBe(120);
    expect(q.appliedIndex).toBe(60);
    await q.close();
  });

  test("sealing writes and syncs the index files off the event loop, and reopen uses them", async () => {
    const d = dir();
    const fs = new FaultyFileLayer();
    const p = await PartitionLog.open({ dir: d, ...small, fs });
    const bs = batchRun(0, 1, 60, 2, 100);
    for (const b of bs) p.append(b);
    expect(await p.flush()).toBe(60);
    await p.close();
    const sealed = readdirSync(d).filter((n) => n.endsWith(".log")).length - 1;
    expect(sealed).toBeGreaterThan(3);
    expect(readdirSync(d).filter((n) => n.endsWith(".index")).length).toBe(sealed);
    expect(readdirSync(d).filter((n) => n.endsWith(".timeindex")).length).toBe(sealed);
    expect(fs.inlineDatasyncPaths.filter((path) => path.endsWith("index"))).toEqual([]);
    const logs: string[] = [];
    const q = await PartitionLog.open({ dir: d, ...small, log: (_l, m) => logs.push(m) });
    expect(logs.filter((m) => m.includes("rebuilt"))).toEqual([]);
    for (let o = 0; o < 120; o += 7) expect(q.read(o, 1).records).toEqual(bs[o >> 1]!);
    await q.close();
  });

  test("scrub steps through the whole log, records damage as a read does, steps over it and starts again", async () => {
    const d = dir();
    const p = await PartitionLog.open({ dir: d, ...small });
    const bs = batchRun(0, 1, 40, 2, 100); // 80 offsets over several segments
    for (const b of bs) p.append(b);
    const second = readdirSync(d).filter((n) => n.endsWith(".log")).sort()[1]!;
    const bytes = readFileSync(join(d, second));
    bytes[200]! ^= 0x01; // inside a batch of the second segment
    writeFileSync(join(d, second), bytes);
    const steps: number[] = [];
    let at = 0;
    let read = 0;
    do {
      const s = p.scrub(at, 500);
      steps.push(s.next);
      read += s.bytes;
      at = s.next;
    } while (at < p.nextOffset && steps.length < 1000);
    expect(at).toBe(80);
    for (let i = 1; i < steps.length; i++) expect(steps[i]!).toBeGreaterThan(steps[i - 1]!);
    const damaged = p.damagedRanges();
    expect(damaged.length).toBe(1);
    expect(damaged[0]!.file).toBe(join(d, second));
    // Everything but the damaged range was read; the damaged range is refused, as to any reader.
    expect(read).toBe(bs.reduce((n, b) => n + b.length, 0) - bs.slice(damaged[0]!.fromOffset / 2, damaged[0]!.toOffset / 2).reduce((n, b) => n + b.length, 0));
    expect(errorOf(() => p.read(damaged[0]!.fromOffset, 1)).code).toBe("CORRUPT_DATA");
    // Past the end (or below the log start) a new pass begins at the log start.
    expect(p.scrub(80, 500).next).toBeGreaterThan(0);
    expect(p.scrub(80, 500).bytes).toBeGreaterThan(0);
    await p.close();
  });

  test("scrub finds a raft index out of order wherever its steps fall, one batch a step too; a fragment with one is refused", async () => {
    const bs = batchRun(0, 1, 40, 2, 100);
    const size = bs[0]!.length; // every batch the same size
    const written = async (): Promise<{ d: string; first: string; end: number }> => {
      const d = dir();
      const p = await PartitionLog.open({ dir: d, ...small });
      for (const b of bs) p.append(b);
      await p.close();
      const logs = readdirSync(d).filter((n) => n.endsWith(".log")).sort();
      return { d, first: join(d, logs[0]!), end: Number(logs[1]!.slice(0, 20)) };
    };
    const { end } = await written();
    for (let k = 1; k < end / 2; k++) {
      // Raise batch k's raft index (outside the producer's checksum) above its successor's.
      const { d, first } = await written();
      const bytes = readFileSync(first);
      bytes[k * size + 14]! ^= 0x5a;
      writeFileSync(first, bytes);
      for (const stepBytes of [500, 1]) {
        // A fresh open each time: the damage found is in memory only until repaired.
        const p = await PartitionLog.open({ dir: d, ...small });
        let at = 0;
        let steps = 0;
        do {
          at = p.scrub(at, stepBytes).next;
          steps++;
        } while (at < p.nextOffset && steps < 1000);
        const hit = p.damagedRanges().some((r) => r.fromOffset <= 2 * k && 2 * k < r.toOffset);
        expect([k, stepBytes, hit]).toEqual([k, stepBytes, true]);
        await p.close();
      }
      // The same bytes offered by a peer are refused whole, not appended.
      const q = await PartitionLog.open({ dir: dir(), ...small });
      const data = concat([bytes.subarray(0, (k + 1) * size), bs[k + 1]!]);
      expect(errorOf(() => q.writeFragment(0, data, Bun.hash.crc32(data))).code).toBe("CORRUPT_DATA");
      expect(q.nextOffset).toBe(0);
      await q.close();
    }
  });

  test("prefetch reads ahead, on the thread pool, every byte the scrub step after it reads", async () => {
    const d = dir();
    const w = await PartitionLog.open({ dir: d, ...small });
    for (const b of batchRun(0, 1, 40, 2, 100)) w.append(b);
    await w.close();
    const fs = new FaultyFileLayer();
    const p = await PartitionLog.open({ dir: d, ...small, fs });
    fs.recordReads = true;
    let at = 0;
    let steps = 0;
    do {
      fs.reads.length = 0;
      await p.prefetch(at, 500);
      const s = p.scrub(at, 500);
      const ahead = fs.reads.filter((r) => r.ahead);
      const direct = fs.reads.filter((r) => !r.ahead);
      expect(ahead.length).toBeGreaterThan(0);
      expect(direct.length).toBeGreaterThan(0);
      for (const r of direct) {
        // Covered: inside a range read ahead, in the same file (the file's end bounds what a read gets).
        const end = Math.min(r.position + r.length, statSync(r.path).size);
        const covered = ahead.some((a) => a.path === r.path && a.position <= r.position && end <= a.position + a.length);
        expect({ ...r, covered }).toEqual({ ...r, covered: true });
      }
      at = s.next;
      steps++;
    } while (at < p.nextOffset && steps < 1000);
    expect(at).toBe(80);
    await p.close();
  });

  test("retention by size and by age drops whole old segments; offsets never shift", async () => {
    const d = dir();
    const p = await PartitionLog.open({ dir: d, ...small, retentionBytes: 4000 });
    const bs = batchRun(0, 1, 100, 1, 100);
    for (const b of bs) p.append(b);
    const before = p.segmentCount;
    expect(await p.enforceRetention(Date.now())).toBeGreaterThan(0);
    expect(p.segmentCount).toBeLessThan(before);
    expect(p.sizeBytes).toBeGreaterThanOrEqual(4000);
    const start = p.logStartOffset;
    expect(start).toBeGreaterThan(0);
    expect(p.read(start, 1).records).toEqual(bs[start]!);
    const e = errorOf(() => p.read(start - 1, 1));
    expect(e.code).toBe("OFFSET_OUT_OF_RANGE");
    expect(e.details.earliest).toBe(start);
    await p.close();
    const q = await PartitionLog.open({ dir: d, ...small, retentionMs: 1000 });
    expect(q.logStartOffset).toBe(start);
    // Batch timestamps are 1000 + offset: at now = 2090, segments whose newest is before 1090 go.
    await q.enforceRetention(2090);
    expect(q.logStartOffset).toBeGreaterThan(start);
    expect(q.logStartOffset).toBeLessThanOrEqual(90);
    expect(q.nextOffset).toBe(100);
    await q.close();
  });

  test("offsetForTimestamp finds the first batch at or after a time", async () => {
    const p = await PartitionLog.open({ dir: dir(), ...small });
    for (const b of batchRun(0, 1, 40, 2, 100)) p.append(b); // batch at offset o: max ts 1000 + o + 1
    expect(p.offsetForTimestamp(0)).toBe(0);
    expect(p.offsetForTimestamp(1001)).toBe(0);
    expect(p.offsetForTimestamp(1002)).toBe(2);
    expect(p.offsetForTimestamp(1050)).toBe(50);
    expect(p.offsetForTimestamp(1079)).toBe(78);
    expect(p.offsetForTimestamp(1080)).toBeUndefined();
    await p.close();
  });

  test("fragments stream to another replica, verified by checksum", async () => {
    const a = await PartitionLog.open({ dir: dir(), ...small });
    const t = tempDir();
    const b = await PartitionLog.open({ dir: join(t.dir, "b"), ...small });
    try {
      const bs = batchRun(0, 1, 30, 2, 100);
      for (const x of bs) a.append(x);
      let from = 0;
      while (from < a.nextOffset) {
        const f = a.readFragment(from, 700);
        b.writeFragment(f.baseOffset, f.data, f.crc32);
        from = f.nextOffset;
      }
      expect(b.nextOffset).toBe(60);
      expect(b.appliedIndex).toBe(30);
      expect(b.read(0, 1 << 20).records.length).toBeGreaterThan(0);
      for (let o = 0; o < 60; o += 2) expect(b.read(o, 1).records).toEqual(bs[o / 2]!);
      const f = a.readFragment(0, 500);
      const bad = f.data.slice();
      bad[100]! ^= 4;
      const c = await PartitionLog.open({ dir: join(t.dir, "c"), ...small });
      expect(() => c.writeFragment(0, bad, f.crc32)).toThrow(/checksum/);
      expect(() => c.writeFragment(0, bad, Bun.hash.crc32(bad))).toThrow(/bad batch/);
      expect(c.nextOffset).toBe(0);
      await c.close();
    } finally {
      await a.close();
      await b.close();
      t.cleanup();
    }
  });

  test("resetTo empties the log and restarts it at an offset, also after reopen", async () => {
    const d = dir();
    const p = await PartitionLog.open({ dir: d, ...small });
    for (const b of batchRun(0, 1, 30)) p.append(b);
    await p.resetTo(500);
    expect(p.logStartOffset).toBe(500);
    expect(p.nextOffset).toBe(500);
    p.append(makeBatch({ baseOffset: 500, raftIndex: 90 }));
    await p.close();
    const q = await PartitionLog.open({ dir: d, ...small });
    expect([q.logStartOffset, q.nextOffset, q.appliedIndex]).toEqual([500, 501, 90]);
    expect(readdirSync(d).filter((n) => n.endsWith(".log")).length).toBe(1);
    await q.close();
  });

  test("truncateTo cuts batches at and after an offset, across segments", async () => {
    const d = dir();
    const p = await PartitionLog.open({ dir: d, ...small });
    const bs = batchRun(0, 1, 60, 2, 100);
    for (const b of bs) p.append(b);
    await expect(p.truncateTo(31)).rejects.toThrow(/inside the batch/);
    await p.truncateTo(30);
    expect([p.nextOffset, p.appliedIndex]).toEqual([30, 15]);
    for (const b of batchRun(30, 16, 5, 2, 100)) p.append(b);
    await p.close();
    const q = await PartitionLog.open({ dir: d, ...small });
    expect([q.nextOffset, q.appliedIndex]).toEqual([40, 20]);
    for (let o = 0; o < 30; o += 2) expect(q.read(o, 1).records).toEqual(bs[o / 2]!);
    await q.close();
  });

  test("a full disk stops appends with DISK_FULL and damages nothing already written", async () => {
    const d = dir();
    const fs = new FaultyFileLayer();
    const p = await PartitionLog.open({ dir: d, ...small, fs });
    const bs = batchRun(0, 1, 10, 1, 100);
    for (const b of bs.slice(0, 5)) p.append(b);
    await p.flush();
    fs.writeBudgetBytes = 50;
    expect(errorOf(() => p.append(bs[5]!)).code).toBe("DISK_FULL");
    expect(errorOf(() => p.append(bs[5]!)).code).toBe("DISK_FULL");
    expect(p.read(0, 1 << 20).records).toEqual(concat(bs.slice(0, 5)));
    await p.close();
    const q = await PartitionLog.open({ dir: d, ...small });
    expect(q.nextOffset).toBe(5);
    q.append(bs[5]!);
    await q.close();
  });

  test("a read-only disk stops appends with READ_ONLY", async () => {
    const fs = new FaultyFileLayer();
    const p = await PartitionLog.open({ dir: dir(), ...small, fs });
    const bs = batchRun(0, 1, 40, 1, 100);
    p.append(bs[0]!);
    fs.readOnlyCode = "EROFS";
    let e: StorageError | undefined;
    for (const b of bs.slice(1)) {
      try {
        p.append(b);
      } catch (err) {
        e = err as StorageError;
        break;
      }
    }
    expect(e?.code).toBe("READ_ONLY");
    await expect(p.flush()).rejects.toThrow(StorageError);
    await p.close();
  });

  test("write-behind: every writeBehindBytes appended start one background fdatasync, no flush needed", async () => {
    const fs = new FaultyFileLayer();
    const p = await PartitionLog.open({ dir: dir(), segmentBytes: 1 << 20, writeBehindBytes: 1000, fs });
    fs.datasyncs = 0; // opening a new log records its start (one durable file write)
    const bs = batchRun(0, 1, 40, 1, 100); // each batch ~ 160 bytes: 7 of them pass 1000
    const turn = () => new Promise((r) => setImmediate(r));
    for (const b of bs.slice(0, 6)) p.append(b);
    await turn();
    expect(fs.datasyncs).toBe(0); // below the threshold: the WAL holds these, nothing to sync yet
    p.append(bs[6]!);
    await turn();
    expect(fs.datasyncs).toBe(1);
    for (const b of bs.slice(7)) p.append(b);
    await p.close(); // waits for the queued syncs
    const bytes = bs.reduce((n, b) => n + b.length, 0);
    // One per 1000 bytes at most (a sync still queued absorbs the next threshold's worth), at least one.
    expect(fs.datasyncs).toBeGreaterThanOrEqual(2);
    expect(fs.datasyncs).toBeLessThanOrEqual(Math.floor(bytes / 1000));
  });

  test("write-behind off (0): appends alone never fdatasync", async () => {
    const fs = new FaultyFileLayer();
    const p = await PartitionLog.open({ dir: dir(), segmentBytes: 1 << 20, writeBehindBytes: 0, fs });
    fs.datasyncs = 0; // opening a new log records its start (one durable file write)
    for (const b of batchRun(0, 1, 40, 1, 100)) p.append(b);
    await new Promise((r) => setImmediate(r));
    expect(fs.datasyncs).toBe(0);
    await p.flush();
    expect(fs.datasyncs).toBe(1);
    await p.close();
  });

  test("a failed write-behind fdatasync stops appends (the page cache state is unknown after it)", async () => {
    const fs = new FaultyFileLayer();
    const p = await PartitionLog.open({ dir: dir(), segmentBytes: 1 << 20, writeBehindBytes: 1000, fs });
    const bs = batchRun(0, 1, 20, 1, 100);
    for (const b of bs.slice(0, 3)) p.append(b);
    fs.datasyncFailCode = "EIO";
    for (const b of bs.slice(3, 8)) p.append(b);
    await new Promise((r) => setImmediate(r));
    fs.datasyncFailCode = undefined;
    expect(errorOf(() => p.append(bs[8]!)).code).toBe("IO");
    await expect(p.flush()).rejects.toThrow(StorageError);
    expect(p.read(0, 1 << 20).records).toEqual(concat(bs.slice(0, 8))); // what it holds is still served
    await p.close();
  });

  test("a missing segment file is an IO error at open, not a silent empty log", async () => {
    const d = dir();
    const p = await PartitionLog.open({ dir: d, ...small });
    for (const b of batchRun(0, 1, 30)) p.append(b);
    await p.close();
    const fs = new FaultyFileLayer();
    const name = readdirSync(d).filter((n) => n.endsWith(".log")).sort()[0]!;
    fs.missingOnOpen.add(join(d, name));
    const e = await PartitionLog.open({ dir: d, ...small, fs }).catch((x: unknown) => x);
    expect((e as StorageError).code).toBe("IO");
  });
});
