// A replica too far behind (or new) pulls the leader's sealed data as fragments: whole stored batches,
// verified by crc32 end to end, appended as they are. Then it follows the Raft log again.
import { create } from "@bufbuild/protobuf";
import { ReplicateFragmentRequestSchema } from "../proto/goulette_pb";
import type { Logger } from "../log";
import { expectCase, type WireClient } from "../wire";
import { assert } from "./assert";
import type { Partition } from "./partition";

const FRAGMENT_MAX_BYTES = 4 * 1024 * 1024;
const FRAGMENT_TIMEOUT_MS = 10_000;

export async function pullFragments(leader: WireClient, p: Partition, upToOffset: number, log: Logger): Promise<void> {
  if (p.log.nextOffset > upToOffset) {
    // Our log runs past the snapshot: a replica that dropped its Raft entries on leaving the group (its
    // partition log failed) restarts behind what it had applied, and the leader's snapshot may be older
    // than that. Only committed entries are applied, so the log up to the snapshot is the group's: keep
    // it, and cut what follows (the Raft log brings it again). Emptying it instead (as was done) wiped
    // data the WAL's own snapshot still counts on: killed before the install finished, the replica then
    // found its log ending before its snapshot and set the partition aside for good (fault run, seed 2614).
    await p.log.truncateTo(upToOffset);
  }
  let pulled = 0;
  while (p.log.nextOffset < upToOffset) {
    const res = expectCase(
      await leader.call(
        {
          case: "replicateFragment",
          value: create(ReplicateFragmentRequestSchema, {
            topic: p.id.topic,
            partition: p.id.partition,
            group: BigInt(p.id.group),
            fromOffset: BigInt(p.log.nextOffset),
            maxBytes: FRAGMENT_MAX_BYTES,
          }),
        },
        { timeoutMs: FRAGMENT_TIMEOUT_MS },
      ),
      "replicateFragmentResponse",
    );
    const start = Number(res.logStartOffset);
    if (p.log.nextOffset < start) {
      // Retention removed what we lack: our history restarts where the leader's does.
      log.info("fragment pull restarts at leader's log start", { partition: p.key, from: p.log.nextOffset, logStart: start });
      await p.log.resetTo(start);
      continue;
    }
    if (res.data.length === 0) throw new Error(`leader has nothing at offset ${p.log.nextOffset} (wanted up to ${upToOffset})`);
    assert(Number(res.baseOffset) === p.log.nextOffset, `fragment starts at ${res.baseOffset}, expected ${p.log.nextOffset}`);
    p.log.writeFragment(Number(res.baseOffset), res.data, res.crc32);
    pulled += res.data.length;
  }
  // The leader may hold more than the snapshot covers; the rest arrives through the Raft log.
  if (p.log.nextOffset > upToOffset) await p.log.truncateTo(upToOffset);
  log.info("fragments pulled", { partition: p.key, bytes: pulled, nextOffset: p.log.nextOffset });
}
