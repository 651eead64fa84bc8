// Crash shapes for partition segments: the active segment cut at every byte of its last batches (with and
// without garbage after the cut), and bit flips in sealed and active segments.
import { afterEach, describe, expect, test } from "bun:test";
import { mkdirSync, readdirSync, readFileSync, rmSync, truncateSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { StorageError } from "../../src/storage/errors";
import { PartitionLog } from "../../src/storage/partition-log";
import type { DamagedRange } from "../../src/storage/types";
import { batchRun, concat } from "./batches";
import { removeTempDirs, tempDir } from "./helpers";

afterEach(removeTempDirs);
function root(): string {
  const t = tempDir();
  return t.dir;
}
const opts = { segmentBytes: 1200, indexIntervalBytes: 200 };

function logFiles(d: string): string[] {
  return readdirSync(d).filter((n) => n.endsWith(".log")).sort();
}

async function readAll(p: PartitionLog): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let o = p.logStartOffset;
  while (o < p.nextOffset) {
    const r = p.read(o, 1 << 20);
    parts.push(r.records);
    o = r.nextOffset;
  }
  return concat(parts);
}

/** `count` batches of 2 records (120 bytes each: 10 batches, 20 offsets, per 1,200-byte segment) in a closed log. */
async function writtenLog(count = 30): Promise<{ base: string; d: string; bs: Uint8Array[] }> {
  const base = root();
  const d = join(base, "a");
  const bs = batchRun(0, 1, count, 2, 60);
  const p = await PartitionLog.open({ dir: d, ...opts });
  for (const b of bs) p.append(b);
  await p.flush();
  await p.close();
  return { base, d, bs };
}

/** writtenLog(), and a peer log holding the same batches, open: damage `d`, repair from `peer`. */
async function logWithPeer(): Promise<{ d: string; bs: Uint8Array[]; peer: PartitionLog }> {
  const { base, d, bs } = await writtenLog();
  const peer = await PartitionLog.open({ dir: join(base, "peer"), ...opts });
  for (const b of bs) peer.append(b);
  return { d, bs, peer };
}

/** Opens and closes the log `times` times without repairing it: each open finds exactly `range` damaged. */
async function opensAlike(d: string, times: number, range: DamagedRange): Promise<void> {
  for (let i = 0; i < times; i++) {
    const q = await PartitionLog.open({ dir: d, ...opts });
    expect(q.damagedRanges()).toEqual([range]);
    await q.close();
  }
}

/** Closes both logs, reopens the repaired one: all of `bs`, no damage left. */
async function reopenedWhole(q: PartitionLog, peer: PartitionLog, d: string, bs: Uint8Array[]): Promise<void> {
  await q.close();
  await peer.close();
  const again = await PartitionLog.open({ dir: d, ...opts });
  expect(again.damagedRanges()).toEqual([]);
  expect(await readAll(again)).toEqual(concat(bs));
  await again.close();
}

describe("partition log crash recovery", () => {
  test("an active segment cut at every byte keeps exactly the whole batches", async () => {
    const base = root();
    const d = join(base, "orig");
    const bs = batchRun(0, 1, 4, 2, 60); // 120-byte batches, all in one segment
    const p = await PartitionLog.open({ dir: d, ...opts });
    for (const b of bs) p.append(b);
    await p.close();
    const name = logFiles(d)[0]!;
    const image = readFileSync(join(d, name));
    const ends = [1, 2, 3, 4].map((k) => k * 120);
    for (let cut = 240; cut <= 480; cut++) { // every byte of the last two batches
      for (const garbage of [false, true]) {
        const c = join(base, "case");
        rmSync(c, { recursive: true, force: true });
        mkdirSync(c);
        const bytes = new Uint8Array(garbage ? 480 : cut);
        bytes.set(image.subarray(0, cut));
        if (garbage) bytes.fill(0x5a, cut);
        writeFileSync(join(c, name), bytes);
        const logs: string[] = [];
        const q = await PartitionLog.open({ dir: c, ...opts, log: (_l, m) => logs.push(m) });
        const whole = ends.filter((e) => e <= cut).length;
        expect({ cut, next: q.nextOffset, applied: q.appliedIndex }).toEqual({ cut, next: whole * 2, applied: whole });
        expect(await readAll(q)).toEqual(concat(bs.slice(0, whole)));
        const clean = ends.includes(cut) && (!garbage || cut === 480);
        expect(logs.some((m) => m.includes("tail"))).toBe(!clean);
        await q.close();
      }
    }
  }, 30_000);

  test("a flipped bit in a sealed segment is refused with file and position, and repaired from a peer", async () => {
    const { d, bs, peer } = await logWithPeer();
    const first = logFiles(d)[0]!;
    const buf = readFileSync(join(d, first));
    const pos = 3 * 120 + 70; // inside the 4th batch (offsets 6..7)
    buf[pos]! ^= 0x10;
    writeFileSync(join(d, first), buf);
    const logs: Record<string, unknown>[] = [];
    const q = await PartitionLog.open({ dir: d, ...opts, log: (_l, _m, det) => det && logs.push(det) });
    expect(q.read(0, 1).records).toEqual(bs[0]!);
    let e: StorageError | undefined;
    try {
      q.read(7, 1);
    } catch (err) {
      e = err as StorageError;
    }
    expect(e?.code).toBe("CORRUPT_DATA");
    expect(e?.details.file).toBe(join(d, first));
    expect(e?.details.position).toBe(360);
    // Reading through from an earlier offset stops before the damage; the damage is then refused.
    expect(q.read(4, 1 << 20).records).toEqual(concat(bs.slice(2, 3)));
    expect(() => q.read(6, 1 << 20)).toThrow(StorageError);
    const [dr] = q.damagedRanges();
    expect(dr).toMatchObject({ file: join(d, first), position: 360, fromOffset: 6 });
    expect(logs.some((l) => l.position === 360)).toBe(true);
    // Serve later data that is known good.
    expect(q.read(dr!.toOffset, 1).records).toEqual(bs[dr!.toOffset / 2]!);
    const f = peer.readFragment(dr!.fromOffset, dr!.toOffset * 200);
    q.repair(dr!.fromOffset, f.data, f.crc32);
    expect(q.damagedRanges()).toEqual([]);
    expect(q.read(6, 1).records).toEqual(bs[3]!);
    await reopenedWhole(q, peer, d, bs);
  }, 30_000);

  test("a flipped bit in a batch's raft index (outside the producer's checksum) is found, and both neighbours repaired", async () => {
    // Up: the 5th batch's index (byte 14 of its header) raised above the 6th's. Down: the 5th's low byte
    // cleared, below the 4th's. Either way the pair around the break is refused, then repaired.
    for (const [at, xor, pair] of [
      [4 * 120 + 14, 0x5a, [8, 12]],
      [4 * 120 + 15, 0x04, [6, 10]],
    ] as const) {
      const { d, bs, peer } = await logWithPeer();
      const first = logFiles(d)[0]!;
      const buf = readFileSync(join(d, first));
      buf[at]! ^= xor;
      writeFileSync(join(d, first), buf);
      const q = await PartitionLog.open({ dir: d, ...opts });
      expect(q.damagedRanges()).toEqual([]); // the producer's checksum does not cover it
      const r = q.read(0, 1 << 20);
      expect(r.nextOffset).toBe(pair[0]); // the batches before the pair are served
      expect(q.damagedRanges()).toEqual([{ file: join(d, first), position: (pair[0] / 2) * 120, fromOffset: pair[0], toOffset: pair[1] }]);
      expect(() => q.read(pair[0], 1)).toThrow(/damaged range/);
      const f = peer.readFragment(pair[0], 2 * 120);
      q.repair(pair[0], f.data, f.crc32);
      expect(await readAll(q)).toEqual(concat(bs));
      await reopenedWhole(q, peer, d, bs);
    }
  }, 30_000);

  test("a sealed segment cut short is a damaged range to its end; repaired from a peer, it is served at once", async () => {
    const { d, bs, peer } = await logWithPeer();
    const first = logFiles(d)[0]!;
    truncateSync(join(d, first), 500); // 4 whole batches and part of the 5th
    const q = await PartitionLog.open({ dir: d, ...opts });
    const [dr] = q.damagedRanges();
    expect(dr).toMatchObject({ file: join(d, first), position: 480, fromOffset: 8 });
    const f = peer.readFragment(dr!.fromOffset, 1 << 20);
    q.repair(dr!.fromOffset, f.data, f.crc32);
    expect(q.damagedRanges()).toEqual([]);
    expect(await readAll(q)).toEqual(concat(bs)); // failed with "segment shorter than its batch"
    await reopenedWhole(q, peer, d, bs);
  }, 30_000);

  test("a sealed segment cut short and not yet repaired keeps its lost tail on every open", async () => {
    const { d, bs, peer } = await logWithPeer();
    const first = logFiles(d)[0]!;
    truncateSync(join(d, first), 500);
    // Not a file of its own for offsets 8..19 on the second open (an index written by the first would
    // have said the cut file is whole).
    await opensAlike(d, 2, { file: join(d, first), position: 480, fromOffset: 8, toOffset: 20 });
    const q = await PartitionLog.open({ dir: d, ...opts });
    const f = peer.readFragment(8, 1 << 20);
    q.repair(8, f.data, f.crc32);
    expect(logFiles(d)).toEqual(logFiles(join(d, "..", "peer")));
    await reopenedWhole(q, peer, d, bs);
  }, 30_000);

  test("damage found while rebuilding an index is a damaged range, the rest is served", async () => {
    const { d, bs } = await writtenLog();
    const first = logFiles(d)[0]!;
    unlinkSync(join(d, first.replace(".log", ".index")));
    const buf = readFileSync(join(d, first));
    buf[2 * 120 + 100]! ^= 1; // 3rd batch, offsets 4..5
    writeFileSync(join(d, first), buf);
    const q = await PartitionLog.open({ dir: d, ...opts });
    expect(q.damagedRanges()).toEqual([{ file: join(d, first), position: 240, fromOffset: 4, toOffset: 6 }]);
    expect(() => q.read(4, 1)).toThrow(/damaged range/);
    expect(() => q.read(5, 1)).toThrow(StorageError);
    expect(q.read(6, 1).records).toEqual(bs[3]!);
    expect(q.nextOffset).toBe(60);
    await q.close();
  }, 30_000);

  test("a flipped bit in the middle of the active segment keeps the good batches after it", async () => {
    const { d, bs } = await writtenLog(6);
    const name = logFiles(d)[0]!;
    const buf = readFileSync(join(d, name));
    buf[120 + 90]! ^= 2; // 2nd batch
    writeFileSync(join(d, name), buf);
    const q = await PartitionLog.open({ dir: d, ...opts });
    expect(q.nextOffset).toBe(12);
    expect(q.damagedRanges()).toMatchObject([{ fromOffset: 2, toOffset: 4, position: 120 }]);
    expect(() => q.read(2, 1)).toThrow(StorageError);
    expect(q.read(4, 1 << 20).records).toEqual(concat(bs.slice(2)));
    await q.close();
  }, 30_000);

  test("a stale index that no longer matches its segment is rebuilt", async () => {
    const { d, bs } = await writtenLog();
    const first = logFiles(d)[0]!;
    truncateSync(join(d, first), 600); // the index describes 1200 bytes
    const logs: string[] = [];
    const q = await PartitionLog.open({ dir: d, ...opts, log: (_l, m) => logs.push(m) });
    expect(logs.some((m) => m.includes("rebuilt"))).toBe(true);
    // Offsets 10..19 of the first segment are gone: a damaged range at its end, never served wrong; the
    // rest of the log is still served.
    expect(q.logStartOffset).toBe(0);
    expect(q.damagedRanges()).toEqual([{ file: join(d, first), position: 600, fromOffset: 10, toOffset: 20 }]);
    expect(q.read(0, 1 << 20).records).toEqual(concat(bs.slice(0, 5)));
    expect(() => q.read(10, 1)).toThrow(/damaged range/);
    expect(q.read(20, 1).records).toEqual(bs[10]!);
    await q.close();
    // Cut at a batch boundary, the file still is not taken for whole on the next open.
    const again = await PartitionLog.open({ dir: d, ...opts });
    expect(again.damagedRanges()).toEqual([{ file: join(d, first), position: 600, fromOffset: 10, toOffset: 20 }]);
    await again.close();
  }, 30_000);

  test("a segment file gone from the middle: its offsets are damaged, repaired from a peer into a file of their own", async () => {
    const { d, bs, peer } = await logWithPeer();
    const before = logFiles(d);
    const second = before[1]!;
    for (const ext of [".log", ".index", ".timeindex"]) unlinkSync(join(d, second.replace(".log", ext)));
    const q = await PartitionLog.open({ dir: d, ...opts });
    expect(q.logStartOffset).toBe(0);
    expect(q.nextOffset).toBe(60);
    // Not at the end of the whole segment before it (which would then hold two segments' worth).
    expect(q.damagedRanges()).toEqual([{ file: join(d, second), position: 0, fromOffset: 20, toOffset: 40 }]);
    expect(q.read(0, 1 << 20).records).toEqual(concat(bs.slice(0, 10)));
    expect(() => q.read(25, 1)).toThrow(/damaged range/);
    expect(q.read(40, 1).records).toEqual(bs[20]!);
    const dr = q.damagedRanges()[0]!;
    const f = peer.readFragment(dr.fromOffset, 1 << 20);
    q.repair(dr.fromOffset, f.data, f.crc32);
    expect(q.damagedRanges()).toEqual([]);
    expect(await readAll(q)).toEqual(concat(bs));
    // The repaired segment carries its timestamps as an appended one does: a lookup by time finds it.
    expect(q.offsetForTimestamp(1000 + 31)).toBe(30);
    // File for file, byte for byte, the peer's layout.
    expect(logFiles(d)).toEqual(before);
    const peerDir = join(d, "..", "peer");
    for (const name of before) expect(readFileSync(join(d, name))).toEqual(readFileSync(join(peerDir, name)));
    await reopenedWhole(q, peer, d, bs);
  }, 30_000);

  test("a lost segment's own file, made empty by an earlier open and not yet repaired, takes the repair on the next opens", async () => {
    const { d, bs, peer } = await logWithPeer();
    const second = logFiles(d)[1]!;
    for (const ext of [".log", ".index", ".timeindex"]) unlinkSync(join(d, second.replace(".log", ext)));
    // The first open makes the empty file; every open after it finds the range there again, in one segment
    // per file (once an index vouched for the empty file, a second segment was made at the same base: the
    // repair wrote into one while reads went to the other, empty, one).
    await opensAlike(d, 3, { file: join(d, second), position: 0, fromOffset: 20, toOffset: 40 });
    const q = await PartitionLog.open({ dir: d, ...opts });
    const f = peer.readFragment(20, 1 << 20);
    q.repair(20, f.data, f.crc32);
    expect(await readAll(q)).toEqual(concat(bs));
    await reopenedWhole(q, peer, d, bs);
  }, 30_000);

  test("the first segments gone: the offsets from the recorded log start are damaged and repaired from a peer", async () => {
    const { d, bs, peer } = await logWithPeer();
    for (const name of readdirSync(d)) if (/^0{20}\./.test(name)) unlinkSync(join(d, name)); // offsets 0..19
    const q = await PartitionLog.open({ dir: d, ...opts });
    expect([q.logStartOffset, q.nextOffset]).toEqual([0, 60]); // not a log that starts at 20
    expect(q.damagedRanges()).toEqual([{ file: join(d, "00000000000000000000.log"), position: 0, fromOffset: 0, toOffset: 20 }]);
    const dr = q.damagedRanges()[0]!;
    const f = peer.readFragment(0, 1 << 20);
    q.repair(dr.fromOffset, f.data, f.crc32);
    expect(await readAll(q)).toEqual(concat(bs));
    await q.close();
    await peer.close();
    // Retention's deletions are not damage: the start it recorded moves with them.
    const r = await PartitionLog.open({ dir: d, ...opts, retentionBytes: 1000 });
    expect(await r.enforceRetention(Date.now())).toBeGreaterThan(0);
    const start = r.logStartOffset;
    await r.close();
    const again = await PartitionLog.open({ dir: d, ...opts });
    expect([again.logStartOffset, again.damagedRanges()]).toEqual([start, []]);
    await again.close();
  }, 30_000);

  test("a reset a crash interrupted is finished on open, whatever segments it left", async () => {
    const { d, bs } = await writtenLog();
    // As if resetTo(500) had written its intent, removed the newest segment, then the machine stopped.
    writeFileSync(join(d, "reset-to"), "500");
    unlinkSync(join(d, logFiles(d).at(-1)!));
    const q = await PartitionLog.open({ dir: d, ...opts });
    expect([q.logStartOffset, q.nextOffset, q.damagedRanges().length]).toEqual([500, 500, 0]);
    expect(readdirSync(d).sort()).toEqual(["00000000000000000500.log", "log-start"]);
    await q.close();
  }, 30_000);
});
