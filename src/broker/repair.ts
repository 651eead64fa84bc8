// A checksum that fails on read marks a range of the partition log as damaged: it is never served, and
// here it is fetched again from another replica (which holds the identical committed batches) and written
// back in place. One damaged replica never costs an acknowledged message while a peer holds a good copy.
import { create } from "@bufbuild/protobuf";
import { ReplicateFragmentRequestSchema } from "../proto/goulette_pb";
import type { Logger } from "../log";
import { expectCase, type ClientPool } from "../wire";
import type { Partition } from "./partition";

const REPAIR_MAX_BYTES = 8 * 1024 * 1024;
const REPAIR_TIMEOUT_MS = 5_000;

/**
 * Repairs every damaged range it can from `peers` (addresses, best first). A peer's answer may end early
 * (at one of its own segment ends, or before damage of its own): what it sent is written, and the rest
 * of the range is asked for again, from the same peer and then from the others. Returns the ranges
 * repaired completely.
 */
export async function repairDamaged(p: Partition, peers: string[], pool: ClientPool, log: Logger): Promise<number> {
  let repaired = 0;
  for (const d of p.log.damagedRanges()) {
    let from = d.fromOffset;
    for (const address of peers) {
      try {
        // What is left of this range starts at `from`, until a repair leaves nothing there.
        while (p.log.damagedRanges().some((r) => r.fromOffset === from)) {
          const res = expectCase(
            await pool.get(address).call(
              {
                case: "replicateFragment",
                value: create(ReplicateFragmentRequestSchema, {
                  topic: p.id.topic,
                  partition: p.id.partition,
                  group: BigInt(p.id.group),
                  fromOffset: BigInt(from),
                  maxBytes: REPAIR_MAX_BYTES,
                }),
              },
              { timeoutMs: REPAIR_TIMEOUT_MS },
            ),
            "replicateFragmentResponse",
          );
          if (Number(res.baseOffset) !== from || Number(res.nextOffset) <= from) {
            throw new Error(`peer returned [${res.baseOffset}, ${res.nextOffset}) for damage from ${from} to ${d.toOffset}`);
          }
          p.log.repair(from, res.data, res.crc32);
          from = Number(res.nextOffset);
        }
        if (from >= d.toOffset) {
          repaired++;
          log.info("damaged range repaired", { partition: p.key, from: d.fromOffset, to: d.toOffset, file: d.file, peer: address });
        }
        break;
      } catch (e) {
        log.warn("repair from peer failed", { partition: p.key, from, to: d.toOffset, peer: address, error: (e as Error).message });
      }
    }
  }
  return repaired;
}
