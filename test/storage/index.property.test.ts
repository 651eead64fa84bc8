// Property tests for the sparse indexes: whatever the batch sizes, record counts, index interval and
// segment size, every offset reads the batch that holds it, and time lookups match a linear scan,
// before and after a reopen (loaded or rebuilt index).
import { afterAll, describe, expect, test } from "bun:test";
import fc from "fast-check";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { PartitionLog } from "../../src/storage/partition-log";
import { SegmentIndex } from "../../src/storage/segment-index";
import { makeBatch } from "./batches";
import { tempDir } from "./helpers";

const root = tempDir();
afterAll(() => root.cleanup());
let run = 0;

const batchSpec = fc.record({
  recordCount: fc.integer({ min: 1, max: 5 }),
  payloadBytes: fc.integer({ min: 0, max: 300 }),
  tsStep: fc.integer({ min: -20, max: 50 }), // timestamps may go backwards
});

describe("index properties", () => {
  test("every offset reads the batch holding it; time lookup matches a linear scan", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(batchSpec, { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 1, max: 1000 }),
        fc.integer({ min: 400, max: 3000 }),
        fc.integer({ min: 900, max: 3000 }),
        async (specs, indexIntervalBytes, segmentBytes, probeTs) => {
          const dir = join(root.dir, `p${run++}`);
          const opts = { dir, indexIntervalBytes, segmentBytes };
          const p = await PartitionLog.open(opts);
          const batches: { base: number; count: number; bytes: Uint8Array; maxTs: number }[] = [];
          let offset = 0;
          let ts = 1000;
          for (const [i, s] of specs.entries()) {
            ts += s.tsStep;
            const bytes = makeBatch({ baseOffset: offset, raftIndex: i + 1, ...s, firstTimestamp: ts, maxTimestamp: ts });
            p.append(bytes);
            batches.push({ base: offset, count: s.recordCount, bytes, maxTs: ts });
            offset += s.recordCount;
          }
          const check = (log: PartitionLog) => {
            for (const b of batches) {
              for (let o = b.base; o < b.base + b.count; o++) expect(log.read(o, 1).records).toEqual(b.bytes);
            }
            const want = batches.find((b) => b.maxTs >= probeTs)?.base;
            expect(log.offsetForTimestamp(probeTs)).toBe(want);
          };
          check(p);
          await p.close();
          const q = await PartitionLog.open(opts);
          check(q);
          await q.close();
          rmSync(dir, { recursive: true, force: true });
        },
      ),
      { numRuns: 40, seed: 4242 },
    );
  }, 30_000);

  test("SegmentIndex survives encode/decode, and floor finds the greatest entry at or below", () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: 1_000_000 }), { maxLength: 200 }), fc.integer({ min: 0, max: 1_100_000 }), (rels, probe) => {
        const sorted = [...rels].sort((a, b) => a - b);
        const idx = new SegmentIndex();
        for (const r of sorted) {
          idx.addOffset(r, r * 3);
          idx.addTime(r * 10, r);
        }
        const summary = { baseOffset: 7, nextOffset: 7 + 2_000_000, sizeBytes: 4_000_000, lastRaftIndex: 9, maxTimestamp: 5 };
        const back = SegmentIndex.decode(idx.encodeOffsets(summary), idx.encodeTimes(), 7, 4_000_000);
        expect(back?.summary).toEqual(summary);
        expect(back?.index.rel).toEqual(sorted);
        const below = sorted.filter((r) => r <= probe);
        const last = below[below.length - 1];
        expect(back!.index.floor(probe)).toEqual(last === undefined ? { rel: 0, pos: 0 } : { rel: last, pos: last * 3 });
        const tBelow = sorted.filter((r) => r * 10 < probe);
        expect(back!.index.timeFloorBelow(probe)).toBe(tBelow.length ? tBelow[tBelow.length - 1]! : -1);
        // A flipped byte anywhere is detected.
        const enc = idx.encodeOffsets(summary);
        enc[probe % enc.length]! ^= 0x40;
        expect(SegmentIndex.decode(enc, idx.encodeTimes(), 7, 4_000_000)).toBeUndefined();
      }),
      { numRuns: 200, seed: 7 },
    );
  }, 30_000);
});
