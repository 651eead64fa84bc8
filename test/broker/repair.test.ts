// The repair loop against peers whose answers end early (at one of their own segment ends, or before
// damage of their own): what a peer sends is kept, and the rest is asked for again.
import { afterEach, expect, test } from "bun:test";
import { readdirSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { repairDamaged } from "../../src/broker/repair";
import type { Partition } from "../../src/broker/partition";
import { silentLogger } from "../../src/log";
import { PartitionLog } from "../../src/storage/partition-log";
import type { ClientPool } from "../../src/wire";
import { batchRun, concat } from "../storage/batches";
import { removeTempDirs, tempDir } from "../storage/helpers";

afterEach(removeTempDirs);

/** A pool whose peers answer ReplicateFragment from local partition logs, recording what was asked. */
function fakePool(peers: Record<string, PartitionLog>, asked: string[]): ClientPool {
  return {
    get: (address: string) => ({
      call: async (body: { value: { fromOffset: bigint; maxBytes: number } }) => {
        asked.push(`${address}@${body.value.fromOffset}`);
        const f = peers[address]!.readFragment(Number(body.value.fromOffset), body.value.maxBytes);
        return {
          case: "replicateFragmentResponse",
          value: { baseOffset: BigInt(f.baseOffset), nextOffset: BigInt(f.nextOffset), crc32: f.crc32, data: f.data, logStartOffset: 0n, done: false },
        };
      },
    }),
  } as unknown as ClientPool;
}

test("a damaged range longer than any one answer is repaired piece by piece from the same peer", async () => {
  const t = tempDir();
  const bs = batchRun(0, 1, 30, 2, 60); // 120-byte batches, 2 offsets each
  const ours = await PartitionLog.open({ dir: join(t.dir, "ours"), segmentBytes: 1200 }); // 10 batches a segment
  const peer = await PartitionLog.open({ dir: join(t.dir, "peer"), segmentBytes: 500 }); // 4 batches a segment
  for (const b of bs) {
    ours.append(b);
    peer.append(b);
  }
  await ours.close();
  const second = readdirSync(join(t.dir, "ours")).filter((n) => n.endsWith(".log")).sort()[1]!;
  unlinkSync(join(t.dir, "ours", second)); // offsets 20..39 gone
  const log = await PartitionLog.open({ dir: join(t.dir, "ours"), segmentBytes: 1200 });
  expect(log.damagedRanges().map((d) => [d.fromOffset, d.toOffset])).toEqual([[20, 40]]);
  const p = { log, id: { topic: "t", partition: 0, group: 1 }, key: "t/0" } as unknown as Partition;
  const asked: string[] = [];
  // The peer's segments end at offsets 24, 32 and 40: three answers (an answer that ended early used
  // to be refused whole, so no single peer could repair this range).
  expect(await repairDamaged(p, ["peer:1"], fakePool({ "peer:1": peer }, asked), silentLogger)).toBe(1);
  expect(asked).toEqual(["peer:1@20", "peer:1@24", "peer:1@32"]);
  expect(log.damagedRanges()).toEqual([]);
  const all: Uint8Array[] = [];
  for (let o = 0; o < log.nextOffset; ) {
    const r = log.read(o, 1 << 20);
    all.push(r.records);
    o = r.nextOffset;
  }
  expect(concat(all)).toEqual(concat(bs));
  await log.close();
  await peer.close();
});
