import { afterEach, describe, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { FaultyFileLayer } from "../../src/storage/file-layer";
import { StorageError } from "../../src/storage/errors";
import { Wal } from "../../src/storage/wal";
import { entries, entry, removeTempDirs, shape, tearNewestWalRecord, tempDir } from "./helpers";
import { RecordType } from "../../src/storage/wal-record";

afterEach(removeTempDirs);
function dir(): string {
  const t = tempDir();
  return join(t.dir, "wal");
}

/** `count` entries of 200 bytes for `group` (indexes from 1), each written, synced and released at once. */
async function releasedTraffic(wal: Wal, group: number, count: number): Promise<void> {
  for (let i = 1; i <= count; i++) {
    wal.appendEntries(group, [entry(i, 1, 200)]);
    await wal.sync();
    wal.release(group, i);
  }
}

describe("WAL", () => {
  test("entries, hard state and snapshot of many groups survive a reopen", async () => {
    const d = dir();
    const wal = await Wal.open({ dir: d, fsync: "always", segmentBytes: 64 * 1024 });
    for (let g = 1; g <= 5; g++) {
      wal.appendEntries(g, entries(1, 10 * g, 1));
      wal.setHardState(g, { term: g, vote: g % 3, commit: g * 2 });
    }
    wal.setSnapshot(3, { index: 4, term: 1, conf: { voters: [1, 2, 3], learners: [4] }, data: new Uint8Array([9, 8]) });
    await wal.sync();
    await wal.close();
    const again = await Wal.open({ dir: d, fsync: "always", segmentBytes: 64 * 1024 });
    for (let g = 1; g <= 5; g++) {
      const r = again.recovered.get(g)!;
      expect(r.hardState).toEqual({ term: g, vote: g % 3, commit: g * 2 });
      const from = g === 3 ? 5 : 1;
      expect(shape(r.entries)).toBe(shape(entries(from, 10 * g)));
      expect(r.entries[0]!.data).toEqual(entry(from).data);
    }
    expect(again.recovered.get(3)!.snapshot).toEqual({
      index: 4,
      term: 1,
      conf: { voters: [1, 2, 3], learners: [4] },
      data: new Uint8Array([9, 8]),
    });
    expect(again.cuts).toEqual([]);
    await again.close();
  });

  test("a spare segment is synced every 4 MiB while it is zero-filled, not in one burst at the end", async () => {
    const fs = new FaultyFileLayer();
    const wal = await Wal.open({ dir: dir(), fsync: "always", segmentBytes: 16 * 1024 * 1024, fs });
    const deadline = Date.now() + 20_000;
    while (wal.stats().spareSegments < 1 && Date.now() < deadline) await new Promise((r) => setImmediate(r));
    expect(wal.stats().spareSegments).toBe(1);
    // 16 MiB in 4 MiB steps: 4 syncs for the spare (the first segment, zero-filled inline at open, has one).
    expect(fs.datasyncs).toBeGreaterThanOrEqual(4);
    await wal.close();
  });

  test("a release point beyond the snapshot still recovers a log that continues right after the snapshot", async () => {
    const d = dir();
    const wal = await Wal.open({ dir: d, fsync: "always", segmentBytes: 64 * 1024 });
    wal.appendEntries(1, entries(1, 10, 1));
    wal.setSnapshot(1, { index: 5, term: 1, conf: { voters: [1], learners: [] }, data: new Uint8Array(0) });
    wal.release(1, 8);
    await wal.sync();
    await wal.close();
    const again = await Wal.open({ dir: d, fsync: "always", segmentBytes: 64 * 1024 });
    const r = again.recovered.get(1)!;
    expect(r.snapshot!.index).toBe(5);
    expect(r.entries.map((e) => e.index)).toEqual([6, 7, 8, 9, 10]); // contiguous after the snapshot
    expect(r.damaged).toBeUndefined();
    await again.close();
  });

  test("a segment roll re-stating the snapshot keeps the entries written after it (kill -9 under load)", async () => {
    const d = dir();
    const wal = await Wal.open({ dir: d, fsync: "always", segmentBytes: 4096 });
    wal.appendEntries(1, entries(1, 10, 1, 100));
    wal.setSnapshot(1, { index: 5, term: 1, conf: { voters: [1], learners: [] }, data: new Uint8Array(0) });
    wal.appendEntries(1, entries(11, 13, 1, 100)); // after the snapshot, before the next segment
    await wal.sync();
    wal.appendEntries(1, entries(14, 80, 1, 100)); // rolls: each new segment's head re-states snapshot 5
    await wal.sync();
    expect(wal.stats().segments).toBeGreaterThan(1);
    await wal.close();
    const again = await Wal.open({ dir: d, fsync: "always", segmentBytes: 4096 });
    const r = again.recovered.get(1)!;
    expect(r.snapshot!.index).toBe(5);
    expect(r.entries.map((e) => e.index)).toEqual(Array.from({ length: 75 }, (_, i) => i + 6));
    expect(r.damaged).toBeUndefined();
    await again.close();
  });

  test("a snapshot written after entries beyond it, once the segment holding its own entry is gone, keeps them", async () => {
    // Seen after kill -9 of a loaded cluster (64 KiB messages): the newest segment held entries 163..166,
    // then the checkpoint's snapshot at 162 (whose entry was in the older segment, released and dropped),
    // then 167..238. Recovery took the snapshot for an install that disagreed with the log, dropped
    // 163..166, and gave Raft nothing after 162 ("stored commit beyond the recovered log") on every
    // replica that checkpointed at that point.
    const d = dir();
    const wal = await Wal.open({ dir: d, fsync: "always", segmentBytes: 4096 });
    let k = 0;
    while (wal.stats().segments < 2) {
      wal.appendEntries(1, [entry(++k, 1, 100)]);
      await wal.sync();
    }
    // Entry k opened the second segment. Entries up to k + 3 are written, then a checkpoint at k - 1.
    wal.appendEntries(1, entries(k + 1, k + 3, 1, 100));
    await wal.sync();
    wal.setSnapshot(1, { index: k - 1, term: 1, conf: { voters: [1], learners: [] }, data: new Uint8Array(0) });
    wal.release(1, k - 1);
    await wal.sync();
    wal.appendEntries(1, entries(k + 4, k + 10, 1, 100));
    await wal.sync();
    expect(wal.stats().segments).toBe(1); // the first segment, all of it released, is gone
    await wal.close();
    const again = await Wal.open({ dir: d, fsync: "always", segmentBytes: 4096 });
    const r = again.recovered.get(1)!;
    expect(r.snapshot!.index).toBe(k - 1);
    expect(r.entries.map((e) => e.index)).toEqual(Array.from({ length: 11 }, (_, i) => k + i));
    expect(r.damaged).toBeUndefined();
    await again.close();
  });

  test("one fdatasync per sync whatever the number of groups", async () => {
    const wal = await Wal.open({ dir: dir(), fsync: "always", segmentBytes: 1 << 20 });
    for (let g = 0; g < 1000; g++) wal.appendEntries(g, [entry(1)]);
    await wal.sync();
    expect(wal.stats().fsyncs).toBe(1);
    await wal.close();
  });

  test("concurrent sync callers share rounds", async () => {
    const wal = await Wal.open({ dir: dir(), fsync: "always", segmentBytes: 1 << 20, inlineFsyncWhenAlone: true });
    wal.appendEntries(1, [entry(1)]);
    const a = wal.sync(); // alone: writes at once
    wal.appendEntries(1, [entry(2)]);
    const b = wal.sync();
    wal.appendEntries(1, [entry(3)]);
    const c = wal.sync();
    expect(b).not.toBe(a);
    expect(c).toBe(b); // both wait for the next round, which carries both appends
    await Promise.all([a, b, c]);
    expect(wal.stats().fsyncs).toBe(2);
    expect(wal.stats().syncs).toBe(2);
    // The last round had two callers: the next one waits a turn of the loop to gather everyone.
    wal.appendEntries(1, [entry(4)]);
    const d = wal.sync();
    expect(wal.sync()).toBe(d); // the round has not written yet: joining it is enough
    await new Promise((r) => setImmediate(r)); // now d has written and waits on its fdatasync
    wal.appendEntries(1, [entry(5)]);
    const e = wal.sync();
    expect(e).not.toBe(d);
    await Promise.all([d, e]);
    expect(wal.stats().fsyncs).toBe(4);
    expect(wal.stats().syncs).toBe(4);
    // a and e each waited alone: fdatasync inline, no thread-pool hop.
    expect(wal.stats().inlineFsyncs).toBe(2);
    await wal.close();
  });

  test("a caller that may not wait inline keeps its round on the thread pool, even alone", async () => {
    const wal = await Wal.open({ dir: dir(), fsync: "always", segmentBytes: 1 << 20, inlineFsyncWhenAlone: true });
    wal.appendEntries(1, [entry(1)]);
    await wal.sync({ mayInline: false });
    expect(wal.stats()).toMatchObject({ fsyncs: 1, inlineFsyncs: 0 });
    // A round started behind a running one (the next round) keeps the flag of the caller that opened it.
    wal.appendEntries(1, [entry(2)]);
    const a = wal.sync(); // alone: inline
    wal.appendEntries(1, [entry(3)]);
    const b = wal.sync({ mayInline: false }); // the next round, alone too, but not inline
    await Promise.all([a, b]);
    expect(wal.stats()).toMatchObject({ fsyncs: 3, inlineFsyncs: 1 });
    // The flag does not outlive its round.
    wal.appendEntries(1, [entry(4)]);
    await wal.sync();
    expect(wal.stats()).toMatchObject({ fsyncs: 4, inlineFsyncs: 2 });
    await wal.close();
  });

  test("inline fdatasync only for a round small enough, and only after an idle spell", async () => {
    const small = await Wal.open({ dir: dir(), fsync: "always", segmentBytes: 1 << 20, inlineFsyncMaxBytes: 4096 });
    small.appendEntries(1, [entry(1)]);
    await small.sync();
    expect(small.stats().inlineFsyncs).toBe(1);
    small.appendEntries(1, [entry(2, 1, 8192)]); // a longer fdatasync: the thread pool
    await small.sync();
    expect(small.stats()).toMatchObject({ fsyncs: 2, inlineFsyncs: 1 });
    await small.close();

    const idle = await Wal.open({ dir: dir(), fsync: "always", segmentBytes: 1 << 20, inlineFsyncIdleMs: 60_000 });
    idle.appendEntries(1, [entry(1)]);
    await idle.sync(); // the first round follows no other: inline
    idle.appendEntries(1, [entry(2)]);
    await idle.sync(); // right behind the last one: the thread pool
    expect(idle.stats()).toMatchObject({ fsyncs: 2, inlineFsyncs: 1 });
    await idle.close();
  });

  test("a suffix replaced by a conflicting append is gone after reopen", async () => {
    const d = dir();
    const wal = await Wal.open({ dir: d, fsync: "always" , segmentBytes: 1 << 20 });
    wal.appendEntries(7, entries(1, 10, 1));
    await wal.sync();
    wal.appendEntries(7, entries(6, 8, 2));
    await wal.close();
    const again = await Wal.open({ dir: d, fsync: "always", segmentBytes: 1 << 20 });
    expect(shape(again.recovered.get(7)!.entries)).toBe("1@1,2@1,3@1,4@1,5@1,6@2,7@2,8@2");
    expect(again.lastIndex(7)).toBe(8);
    await again.close();
  });

  test("released segments are recycled, not deleted, and reused without new zero-fill", async () => {
    const d = dir();
    const segmentBytes = 16 * 1024;
    const wal = await Wal.open({ dir: d, fsync: "always", segmentBytes });
    let index = 0;
    for (let round = 0; round < 40; round++) {
      const es = entries(index + 1, index + 10, 1, 100);
      wal.appendEntries(1, es);
      wal.appendEntries(2, es);
      index += 10;
      await wal.sync();
      wal.release(1, index - 5);
      wal.release(2, index - 5);
    }
    const s = wal.stats();
    expect(s.recycledSegments).toBeGreaterThan(0);
    expect(s.segments).toBeLessThanOrEqual(3);
    expect(s.createdSegments).toBeLessThanOrEqual(s.segments + 5);
    // Segment files and ready spares, and at most one spare still being zero-filled in the background (its
    // .tmp is not counted in the stats until it is ready; a slow disk keeps it there longer).
    const files = readdirSync(d);
    expect(files.filter((n) => !n.endsWith(".tmp")).length).toBeLessThanOrEqual(s.segments + s.spareSegments);
    expect(files.filter((n) => n.endsWith(".tmp")).length).toBeLessThanOrEqual(1);
    wal.setHardState(1, { term: 3, vote: 1, commit: index });
    await wal.close();
    const again = await Wal.open({ dir: d, fsync: "always", segmentBytes });
    const r = again.recovered.get(1)!;
    expect(r.released).toBe(index - 5);
    expect(shape(r.entries)).toBe(shape(entries(index - 4, index)));
    expect(r.hardState).toEqual({ term: 3, vote: 1, commit: index });
    expect(shape(again.recovered.get(2)!.entries)).toBe(shape(entries(index - 4, index)));
    await again.close();
  });

  test("pinningGroups names the groups holding the oldest segment back", async () => {
    const wal = await Wal.open({ dir: dir(), fsync: "always", segmentBytes: 8 * 1024 });
    expect(wal.pinningGroups()).toEqual([]);
    for (let i = 1; i <= 60; i++) {
      for (const g of [1, 2, 3]) wal.appendEntries(g, [entry(i, 1, 100)]);
      await wal.sync();
      wal.release(2, i);
    }
    expect(wal.stats().segments).toBeGreaterThan(1);
    expect(wal.pinningGroups().sort()).toEqual([1, 3]);
    wal.release(1, 60);
    wal.release(3, 60);
    await wal.sync();
    await wal.sync(); // the checkpoint of the new active segment is durable: older ones go
    expect(wal.stats().segments).toBe(1);
    expect(wal.pinningGroups()).toEqual([]);
    await wal.close();
  });

  test("hard state survives recycling of the segment that first held it", async () => {
    const d = dir();
    const wal = await Wal.open({ dir: d, fsync: "always", segmentBytes: 8 * 1024 });
    wal.setHardState(9, { term: 4, vote: 2, commit: 0 });
    await releasedTraffic(wal, 1, 200);
    expect(wal.stats().recycledSegments).toBeGreaterThan(0);
    await wal.close();
    const again = await Wal.open({ dir: d, fsync: "always", segmentBytes: 8 * 1024 });
    expect(again.recovered.get(9)!.hardState).toEqual({ term: 4, vote: 2, commit: 0 });
    expect(again.recovered.get(1)!.entries).toEqual([]);
    await again.close();
  });

  test("drop lets a group's entries go: its segments are reused, term and vote stay, recovery reports the drop", async () => {
    const d = dir();
    const wal = await Wal.open({ dir: d, fsync: "always", segmentBytes: 8 * 1024 });
    wal.setSnapshot(1, { index: 3, term: 1, conf: { voters: [1, 2, 3], learners: [] }, data: new Uint8Array([7]) });
    wal.setHardState(1, { term: 2, vote: 3, commit: 20 });
    // Group 1 stops being released (its partition failed); group 2 goes on and is released as it goes.
    wal.appendEntries(1, entries(4, 20, 2, 100));
    await releasedTraffic(wal, 2, 120);
    const pinned = wal.stats().segments;
    expect(pinned).toBeGreaterThan(3); // group 1's records hold the first segment, so every later one stays
    expect(wal.pinningGroups()).toEqual([1]);
    // A round in flight when the drop is asked for must not reuse the segments on the strength of a drop
    // that is not durable yet (a crash would then lose the entries with no record of letting them go).
    wal.appendEntries(2, [entry(121, 1, 200)]);
    const inFlight = wal.sync();
    const dropped = wal.drop(1);
    await inFlight;
    expect(wal.stats().segments).toBe(pinned);
    await dropped;
    await wal.sync(); // the checkpoint of the active segment is durable: the older ones go
    expect(wal.stats().segments).toBe(1);
    expect(wal.pinningGroups()).toEqual([]);
    await wal.close();
    const again = await Wal.open({ dir: d, fsync: "always", segmentBytes: 8 * 1024 });
    const r = again.recovered.get(1)!;
    expect(r.hardState).toEqual({ term: 2, vote: 3, commit: 20 });
    expect(r.snapshot!.index).toBe(3);
    expect(r.entries).toEqual([]);
    expect(r.dropped).toEqual({ term: 2, index: 20 }) // the newest entry let go;
    expect(again.recovered.get(2)!.dropped).toBeUndefined();
    await again.close();
  });

  test("carry writes a lone failed group's unreleased entries again at the head: older segments are reused, a reopen holds them all", async () => {
    const d = dir();
    const wal = await Wal.open({ dir: d, fsync: "always", segmentBytes: 8 * 1024 });
    wal.setSnapshot(1, { index: 3, term: 1, conf: { voters: [1], learners: [] }, data: new Uint8Array([7]) });
    wal.setHardState(1, { term: 3, vote: 1, commit: 22 });
    // Group 1 is never released (its partition failed, and no other replica holds its entries); part of
    // its log was written over in a later term, which the copy must keep as it is now.
    wal.appendEntries(1, entries(4, 20, 2, 100));
    wal.appendEntries(1, entries(15, 22, 3, 100));
    const want = [...entries(4, 14, 2, 100), ...entries(15, 22, 3, 100)];
    let most = 0;
    for (let i = 1; i <= 360; i++) {
      wal.appendEntries(2, [entry(i, 1, 200)]);
      await wal.sync();
      wal.release(2, i);
      if (i === 120) {
        expect(wal.stats().segments).toBeGreaterThan(3); // group 1 holds the first segment, and every later one
        expect(wal.pinningGroups()).toEqual([1]);
      }
      if (i >= 120 && wal.pinningGroups().includes(1) && (await wal.carry(1))) {
        // At once again it has nothing to do: the copy is in the segment being written.
        expect(await wal.carry(1)).toBe(false);
      }
      if (i > 130) most = Math.max(most, wal.stats().segments);
    }
    expect(most).toBeLessThanOrEqual(4);
    expect(wal.stats().recycledSegments).toBeGreaterThan(10);
    await wal.close();
    const again = await Wal.open({ dir: d, fsync: "always", segmentBytes: 8 * 1024 });
    const r = again.recovered.get(1)!;
    expect(r.snapshot!.index).toBe(3);
    expect(r.hardState).toEqual({ term: 3, vote: 1, commit: 22 });
    expect(shape(r.entries)).toBe(shape(want));
    expect(r.entries.map((e) => e.data)).toEqual(want.map((e) => e.data));
    expect(r.damaged).toBeUndefined();
    await again.close();
  });

  test("after a carry, an older segment still holding part of the old copy changes nothing at a reopen", async () => {
    const d = dir();
    const fs = new FaultyFileLayer();
    const wal = await Wal.open({ dir: d, fsync: "always", segmentBytes: 8 * 1024, fs });
    wal.appendEntries(1, entries(1, 60, 1, 200)); // two segments' worth
    await wal.sync();
    expect(wal.stats().segments).toBe(2);
    wal.appendEntries(2, [entry(1, 1, 16)]); // group 2 keeps the second segment (never released)
    await releasedTraffic(wal, 3, 80);
    const readBefore = fs.readFilePaths.length;
    // One carry at a time per group: a second call while the first reads back does nothing.
    expect(await Promise.all([wal.carry(1), wal.carry(1)])).toEqual([true, false]);
    expect(fs.readFilePaths.length).toBe(readBefore); // the segments were read on the thread pool
    await wal.sync();
    // The first segment went; the second stays for group 2, with entries 36..60 of group 1's old copy.
    expect(wal.pinningGroups()).toEqual([2]);
    await wal.close();
    const again = await Wal.open({ dir: d, fsync: "always", segmentBytes: 8 * 1024 });
    const r = again.recovered.get(1)!;
    expect(shape(r.entries)).toBe(shape(entries(1, 60, 1, 200)));
    expect(r.entries.map((e) => e.data)).toEqual(entries(1, 60, 1, 200).map((e) => e.data));
    expect(r.damaged).toBeUndefined();
    expect(shape(again.recovered.get(2)!.entries)).toBe(shape([entry(1, 1, 16)]));
    await again.close();
  });

  test("a carry cut short by a crash leaves the group's log as it was", async () => {
    const d = dir();
    const wal = await Wal.open({ dir: d, fsync: "always", segmentBytes: 8 * 1024 });
    wal.appendEntries(2, [entry(1, 1, 16)]); // group 2 keeps the first segment, and with it the old copy
    wal.appendEntries(1, entries(1, 30, 1, 200));
    await releasedTraffic(wal, 3, 60);
    expect(await wal.carry(1)).toBe(true);
    await wal.close();
    // The copy's last record is torn, as if the process died while writing it.
    expect(tearNewestWalRecord(d, 8).type).toBe(RecordType.Entry);
    const again = await Wal.open({ dir: d, fsync: "always", segmentBytes: 8 * 1024 });
    expect(again.cuts.length).toBe(1);
    const r = again.recovered.get(1)!;
    expect(shape(r.entries)).toBe(shape(entries(1, 30, 1, 200)));
    expect(r.entries.map((e) => e.data)).toEqual(entries(1, 30, 1, 200).map((e) => e.data));
    await again.close();
  });

  test("a dropped group written again from the start keeps those entries, and a snapshot past the drop clears it", async () => {
    const d = dir();
    const conf = { voters: [1], learners: [] };
    const wal = await Wal.open({ dir: d, fsync: "always", segmentBytes: 4096 });
    wal.appendEntries(1, entries(1, 10, 1, 100)); // no snapshot yet: nothing after the release point rescues them
    await wal.sync();
    await wal.drop(1);
    await wal.close();
    let again = await Wal.open({ dir: d, fsync: "always", segmentBytes: 4096 });
    expect(again.recovered.get(1)!.dropped).toEqual({ term: 1, index: 10 });
    expect(again.recovered.get(1)!.entries).toEqual([]);
    // The replica rejoins: its leader sends everything again, below the old release point and past it,
    // over several segments (whose heads re-state the release point).
    again.appendEntries(1, entries(1, 60, 2, 100));
    await again.sync();
    again.appendEntries(1, entries(61, 62, 2, 100));
    await again.sync();
    expect(again.stats().segments).toBeGreaterThan(2);
    await again.close();
    again = await Wal.open({ dir: d, fsync: "always", segmentBytes: 4096 });
    let r = again.recovered.get(1)!;
    expect(r.entries.map((e) => e.index)).toEqual(Array.from({ length: 62 }, (_, i) => i + 1)); // not taken as released
    expect(r.entries[0]!.term).toBe(2);
    expect(r.dropped).toEqual({ term: 1, index: 10 }); // until a snapshot covers the dropped range
    again.setSnapshot(1, { index: 12, term: 2, conf, data: new Uint8Array(0) });
    again.release(1, 12);
    await again.sync();
    await again.close();
    again = await Wal.open({ dir: d, fsync: "always", segmentBytes: 4096 });
    r = again.recovered.get(1)!;
    expect(r.dropped).toBeUndefined();
    expect(r.entries.map((e) => e.index)).toEqual(Array.from({ length: 50 }, (_, i) => i + 13));
    await again.close();
  });

  test("a drop outlives the reuse of the segment that recorded it (segment heads re-state it)", async () => {
    const d = dir();
    const wal = await Wal.open({ dir: d, fsync: "always", segmentBytes: 4096 });
    wal.appendEntries(1, entries(1, 5, 1, 100));
    await wal.sync();
    await wal.drop(1);
    await releasedTraffic(wal, 2, 80);
    expect(wal.stats().recycledSegments).toBeGreaterThan(0);
    await wal.close();
    const again = await Wal.open({ dir: d, fsync: "always", segmentBytes: 4096 });
    expect(again.recovered.get(1)!.dropped).toEqual({ term: 1, index: 5 });
    expect(again.recovered.get(1)!.entries).toEqual([]);
    await again.close();
  });

  test("of two drops, the later in log order is kept, not the higher index", async () => {
    const d = dir();
    let wal = await Wal.open({ dir: d, fsync: "always", segmentBytes: 64 * 1024 });
    wal.appendEntries(1, entries(1, 10, 1));
    await wal.sync();
    await wal.drop(1);
    await wal.close();
    wal = await Wal.open({ dir: d, fsync: "always", segmentBytes: 64 * 1024 });
    // Rejoined under a new leader whose log replaced ours from index 1, then dropped again at 5.
    wal.appendEntries(1, entries(1, 5, 2));
    await wal.sync();
    await wal.drop(1);
    await wal.close();
    wal = await Wal.open({ dir: d, fsync: "always", segmentBytes: 64 * 1024 });
    expect(wal.recovered.get(1)!.dropped).toEqual({ term: 2, index: 5 });
    await wal.close();
  });

  test("drop of a group whose entries are all released elsewhere records nothing", async () => {
    const d = dir();
    const wal = await Wal.open({ dir: d, fsync: "always", segmentBytes: 64 * 1024 });
    wal.appendEntries(1, entries(1, 5, 1));
    wal.setSnapshot(1, { index: 5, term: 1, conf: { voters: [1], learners: [] }, data: new Uint8Array(0) });
    await wal.sync();
    wal.release(1, 5);
    const records = wal.stats().recordsWritten;
    await wal.drop(1);
    expect(wal.stats().recordsWritten).toBe(records);
    await wal.close();
    const again = await Wal.open({ dir: d, fsync: "always", segmentBytes: 64 * 1024 });
    expect(again.recovered.get(1)!.dropped).toBeUndefined();
    await again.close();
  });

  test("removeGroup forgets the group", async () => {
    const d = dir();
    const wal = await Wal.open({ dir: d, fsync: "never", segmentBytes: 64 * 1024 });
    wal.appendEntries(1, entries(1, 3));
    wal.appendEntries(2, entries(1, 3));
    wal.removeGroup(1);
    await wal.close();
    const again = await Wal.open({ dir: d, fsync: "never", segmentBytes: 64 * 1024 });
    expect(again.recovered.has(1)).toBe(false);
    expect(again.recovered.get(2)!.entries.length).toBe(3);
    await again.close();
  });

  test("interval policy fdatasyncs at most once per interval", async () => {
    const wal = await Wal.open({ dir: dir(), fsync: { intervalMs: 60_000 }, segmentBytes: 1 << 20 });
    for (let i = 1; i <= 20; i++) {
      wal.appendEntries(1, [entry(i)]);
      await wal.sync();
    }
    expect(wal.stats().fsyncs).toBe(1);
    expect(wal.stats().syncs).toBe(20);
    await wal.close();
  });

  test("never policy does not fdatasync on sync", async () => {
    const wal = await Wal.open({ dir: dir(), fsync: "never", segmentBytes: 1 << 20 });
    for (let i = 1; i <= 5; i++) {
      wal.appendEntries(1, [entry(i)]);
      await wal.sync();
    }
    expect(wal.stats().fsyncs).toBe(0);
    await wal.close();
  });

  test("a full disk fails the sync, stops appends, and keeps what was durable", async () => {
    const d = dir();
    const fs = new FaultyFileLayer();
    const wal = await Wal.open({ dir: d, fsync: "always", segmentBytes: 64 * 1024, fs });
    wal.appendEntries(1, entries(1, 5));
    await wal.sync();
    fs.writeBudgetBytes = 100;
    wal.appendEntries(1, entries(6, 10));
    const err = await wal.sync().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).code).toBe("DISK_FULL");
    expect(() => wal.appendEntries(1, [entry(11)])).toThrow(StorageError);
    await expect(wal.sync()).rejects.toThrow(StorageError);
    await wal.close();
    const again = await Wal.open({ dir: d, fsync: "always", segmentBytes: 64 * 1024 });
    // The synced records are intact; of the failed write, only whole records that reached the file remain.
    const got = again.recovered.get(1)!.entries;
    expect(got.length).toBeGreaterThanOrEqual(5);
    expect(shape(got)).toBe(shape(entries(1, got.length)));
    expect(got.length).toBeLessThan(10);
    expect(again.cuts.length).toBe(1);
    expect(again.cuts[0]!.midLog).toBe(false);
    await again.close();
  });

  test("a read-only directory is a READ_ONLY error at open", async () => {
    const fs = new FaultyFileLayer();
    fs.readOnlyCode = "EROFS";
    const err = await Wal.open({ dir: dir(), fsync: "always", segmentBytes: 64 * 1024, fs }).catch((e: unknown) => e);
    expect((err as StorageError).code).toBe("READ_ONLY");
  });
});

describe("WAL fdatasync failure", () => {
  test("a failed fdatasync stops the WAL for good (the page cache state is unknown after it)", async () => {
    const t = tempDir();
    try {
      const fs = new FaultyFileLayer();
      const wal = await Wal.open({ dir: t.dir, fsync: "always", segmentBytes: 64 * 1024, fs });
      wal.appendEntries(1, [entry(1)]);
      await wal.sync();
      fs.datasyncFailCode = "EIO";
      wal.appendEntries(1, [entry(2)]);
      const e = await wal.sync().catch((x: unknown) => x);
      expect((e as StorageError).code).toBe("IO");
      fs.datasyncFailCode = undefined;
      expect(() => wal.setHardState(1, { term: 1, vote: 0, commit: 1 })).toThrow(StorageError);
      await expect(wal.sync()).rejects.toThrow(StorageError);
      await wal.close();
    } finally {
      t.cleanup();
    }
  });
});
