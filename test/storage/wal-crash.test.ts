// Crash shapes for the WAL: a write torn at every byte of the last records (the rest of the preallocated
// file holds zeros or garbage), and single-bit flips. Recovery must keep exactly the whole records.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { Wal } from "../../src/storage/wal";
import { RECORD_HEADER_BYTES } from "../../src/storage/wal-record";
import { entries, newestWalRecord, shape, tempDir } from "./helpers";

const SEGMENT_BYTES = 4096;
let root: { dir: string; cleanup: () => void };
let image: Uint8Array; // the segment after every sync
let lastWriteStart = 0; // where the last sync's records begin
let lastWriteEnd = 0;
let recordEnds: number[] = []; // end position of each record of the last write, in order
let segName = "";

beforeAll(async () => {
  root = tempDir();
  const d = join(root.dir, "orig");
  const wal = await Wal.open({ dir: d, fsync: "always", segmentBytes: SEGMENT_BYTES });
  wal.appendEntries(1, entries(1, 5, 1, 20));
  wal.setHardState(1, { term: 1, vote: 1, commit: 3 });
  await wal.sync();
  lastWriteStart = 32 + wal.stats().bytesWritten - 8; // header + records (bytesWritten counts the end marker)
  wal.appendEntries(1, entries(6, 8, 1, 20));
  wal.appendEntries(2, entries(1, 2, 2, 20));
  await wal.sync();
  await wal.close();
  segName = readdirSync(d).find((n) => /^\d{16}\.wal$/.test(n))!;
  image = new Uint8Array(readFileSync(join(d, segName)));
  // Each entry record is header + 1 type byte + 20 data bytes.
  const recBytes = RECORD_HEADER_BYTES + 1 + 20;
  recordEnds = [1, 2, 3, 4, 5].map((k) => lastWriteStart + k * recBytes);
  lastWriteEnd = recordEnds[4]!;
});
afterAll(() => root.cleanup());

/** Opens a fresh WAL directory holding just `bytes` as segment `name`. */
async function openImage(bytes: Uint8Array, name = segName): Promise<Wal> {
  const d = join(root.dir, "case");
  rmSync(d, { recursive: true, force: true });
  const { mkdirSync } = await import("node:fs");
  mkdirSync(d, { recursive: true });
  writeFileSync(join(d, name), bytes);
  return Wal.open({ dir: d, fsync: "never", segmentBytes: SEGMENT_BYTES });
}

async function recoverFrom(bytes: Uint8Array) {
  const wal = await openImage(bytes);
  const out = {
    g1: shape(wal.recovered.get(1)?.entries ?? []),
    g2: shape(wal.recovered.get(2)?.entries ?? []),
    hs: wal.recovered.get(1)?.hardState,
    cuts: wal.cuts,
    damaged: wal.recovered.get(1)?.damaged ?? false,
    tornTails: [wal.recovered.get(1)?.tornTail, wal.recovered.get(2)?.tornTail],
  };
  await wal.close();
  return out;
}

function expected(wholeRecords: number) {
  return {
    g1: shape(entries(1, 5 + Math.min(wholeRecords, 3), 1)),
    g2: shape(entries(1, Math.max(0, wholeRecords - 3), 2)),
  };
}

describe("WAL crash recovery", () => {
  test("the image itself recovers everything", async () => {
    const r = await recoverFrom(image);
    expect({ g1: r.g1, g2: r.g2 }).toEqual(expected(5));
    expect(r.hs).toEqual({ term: 1, vote: 1, commit: 3 });
    expect(r.cuts).toEqual([]);
  }, 30_000);

  test("a write torn at every byte keeps exactly the whole records (zero or garbage after the tear)", async () => {
    for (let cut = lastWriteStart; cut <= lastWriteEnd; cut++) {
      const whole = recordEnds.filter((e) => e <= cut).length;
      for (const fill of [0, 0xa5]) {
        const bytes = image.slice();
        bytes.fill(fill, cut, lastWriteEnd + 8);
        const r = await recoverFrom(bytes);
        expect({ g1: r.g1, g2: r.g2, cut }).toEqual({ ...expected(whole), cut });
        expect(r.hs).toEqual({ term: 1, vote: 1, commit: 3 });
        const atBoundary = fill === 0 && (cut === lastWriteEnd || recordEnds.includes(cut) || cut === lastWriteStart);
        if (!atBoundary) {
          expect(r.cuts.length).toBe(1);
          expect(r.cuts[0]!.midLog).toBe(false);
        }
      }
    }
  }, 30_000);

  test("a last record cut short names its group's entry (term, index) as the torn tail; garbage names nothing", async () => {
    const recStart = recordEnds[3]!;
    for (const cutBytes of [1, 3, 8, 20]) {
      const bytes = image.slice();
      bytes.fill(0, lastWriteEnd - cutBytes, lastWriteEnd);
      const r = await recoverFrom(bytes);
      expect(r.cuts).toMatchObject([{ position: recStart, midLog: false, record: { type: 1, group: 2, term: 2, index: 2 } }]);
      expect(r.tornTails).toEqual([undefined, { term: 2, index: 2 }]);
    }
    // Torn inside its header: the length survived, the rest is zeros. No term, so no torn tail.
    const bytes = image.slice();
    bytes.fill(0, recStart + 10, lastWriteEnd + 8);
    const r = await recoverFrom(bytes);
    expect(r.cuts.length).toBe(1);
    expect(r.tornTails).toEqual([undefined, undefined]);
    // Damage before good records is no torn tail either (the group is flagged damaged instead).
    const flipped = image.slice();
    flipped[recordEnds[1]! + 12]! ^= 1; // in the third record's term
    const m = await recoverFrom(flipped);
    expect(m.cuts[0]!.midLog).toBe(true);
    expect(m.tornTails).toEqual([undefined, undefined]);
  }, 30_000);

  test("a last record cut short that held a hard state names its term (tornHardStateTerm); a garbage term names nothing", async () => {
    const d = join(root.dir, "hs-orig");
    const wal = await Wal.open({ dir: d, fsync: "always", segmentBytes: SEGMENT_BYTES });
    wal.appendEntries(1, entries(1, 3, 1, 20));
    wal.setHardState(1, { term: 1, vote: 1, commit: 2 });
    await wal.sync();
    wal.setHardState(1, { term: 5, vote: 3, commit: 2 }); // a vote in term 5, alone in its round
    await wal.sync();
    await wal.close();
    const { path, bytes: orig, start: lastAt, end: pos, type } = newestWalRecord(d);
    const name = basename(path);
    expect(type).toBe(2); // the hard state record
    const reopen = async (bytes: Uint8Array) => {
      const w = await openImage(bytes, name);
      const g = w.recovered.get(1)!;
      const out = { hs: g.hardState, lost: g.tornHardStateTerm, tornTail: g.tornTail, cuts: w.cuts.length };
      await w.close();
      return out;
    };
    const torn = orig.slice();
    torn.fill(0, pos - 4, pos); // the vote never reached the disk
    expect(await reopen(torn)).toEqual({ hs: { term: 1, vote: 1, commit: 2 }, lost: 5, tornTail: undefined, cuts: 1 });
    const garbage = torn.slice();
    new DataView(garbage.buffer).setUint32(lastAt + 12, 3_000_000, true); // a term no election reaches
    expect((await reopen(garbage)).lost).toBeUndefined();
    expect((await reopen(orig)).lost).toBeUndefined(); // whole: nothing lost
  });

  test("a flipped bit in the last records cuts from the damaged record; damage before good records is flagged", async () => {
    for (let pos = lastWriteStart; pos < lastWriteEnd; pos++) {
      const k = recordEnds.findIndex((e) => e > pos); // damaged record
      const bytes = image.slice();
      bytes[pos]! ^= 1 << (pos % 8);
      const r = await recoverFrom(bytes);
      expect({ g1: r.g1, g2: r.g2, pos }).toEqual({ ...expected(k), pos });
      expect(r.cuts.length).toBe(1);
      const recStart = k === 0 ? lastWriteStart : recordEnds[k - 1]!;
      expect(r.cuts[0]!.position).toBe(recStart);
      const inLength = pos < recStart + 4;
      if (k < 4 && !inLength) {
        expect(r.cuts[0]!.midLog).toBe(true);
        expect(r.damaged).toBe(true);
      }
    }
  }, 30_000);
});

describe("WAL corruption before the last segment", () => {
  test("records after the damage are not trusted: the prefix is kept and the groups are flagged", async () => {
    const t = tempDir();
    try {
      const d = join(t.dir, "wal");
      const wal = await Wal.open({ dir: d, fsync: "never", segmentBytes: 4096 });
      for (let i = 1; i <= 120; i++) {
        wal.appendEntries(1, [entries(i, i, 1, 60)[0]!]);
        if (i % 10 === 0) await wal.sync();
      }
      wal.setHardState(1, { term: 2, vote: 1, commit: 100 });
      await wal.close();
      const segs = readdirSync(d).filter((n) => /^\d{16}\.wal$/.test(n)).sort();
      expect(segs.length).toBeGreaterThan(2);
      const first = join(d, segs[0]!);
      const bytes = new Uint8Array(readFileSync(first));
      const pos = 32 + 5 * (RECORD_HEADER_BYTES + 61) + 40; // inside the 6th record
      bytes[pos]! ^= 0x08;
      writeFileSync(first, bytes);
      const again = await Wal.open({ dir: d, fsync: "never", segmentBytes: 4096 });
      expect(again.cuts).toMatchObject([{ file: first, midLog: true }]);
      const r = again.recovered.get(1)!;
      expect(r.damaged).toBe(true);
      expect(shape(r.entries)).toBe(shape(entries(1, 5, 1)));
      expect(r.hardState).toEqual({ term: 2, vote: 1, commit: 100 }); // from a later, intact segment
      await again.close();
    } finally {
      t.cleanup();
    }
  }, 30_000);
});
