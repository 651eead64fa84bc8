// Raft core throughput: three in-memory nodes, no I/O, 1 KiB proposals in batches. Messages are
// handed over synchronously, so this measures the core's own cost per committed entry.
// Prints one JSON line per batch size: committed entries/s and approximate heap bytes allocated per
// entry (sum of positive heap-usage deltas sampled per batch; garbage collections show up as drops).
import { RaftNode } from "../src/raft/node";
import { Role, type Message, type NodeId } from "../src/raft/types";

const PAYLOAD_BYTES = 1024;
const RUN_MS = 1500;
const COMPACT_EVERY = 4096;

function bench(batch: number): Record<string, number | string> {
  const ids: NodeId[] = [1, 2, 3];
  const nodes = new Map<NodeId, RaftNode>();
  for (const id of ids) {
    nodes.set(id, new RaftNode({ id, voters: ids, electionTicks: 10, heartbeatTicks: 1, seed: 1 }));
  }
  const queue: Message[] = [];
  let applied = 0;
  const drain = (n: RaftNode) => {
    while (n.hasReady()) {
      const rd = n.ready();
      for (const m of rd.messages) queue.push(m);
      if (n.id === 1) applied += rd.committedEntries.length;
      n.advance(rd);
    }
  };
  const settle = () => {
    for (const n of nodes.values()) drain(n);
    while (queue.length > 0) {
      const m = queue.shift() as Message;
      const n = nodes.get(m.to) as RaftNode;
      n.step(m);
      drain(n);
    }
  };
  const leader = nodes.get(1) as RaftNode;
  leader.campaign();
  settle();
  if (leader.role !== Role.Leader) throw new Error("node 1 did not win the election");

  const payload = new Uint8Array(PAYLOAD_BYTES).fill(7);
  const proposals = Array.from({ length: batch }, () => payload);
  applied = 0;
  let allocated = 0;
  let lastHeap = process.memoryUsage().heapUsed;
  let sinceCompact = 0;
  const started = performance.now();
  let batches = 0;
  while (performance.now() - started < RUN_MS) {
    leader.proposeBatch(proposals);
    settle();
    batches++;
    sinceCompact += batch;
    if (sinceCompact >= COMPACT_EVERY) {
      sinceCompact = 0;
      for (const n of nodes.values()) n.compact(n.appliedIndex, new Uint8Array(0));
    }
    // Sampling the heap costs tens of microseconds: do it about every 64 KiB of payload.
    if ((batches * batch) % 64 < batch) {
      const heap = process.memoryUsage().heapUsed;
      if (heap > lastHeap) allocated += heap - lastHeap;
      lastHeap = heap;
    }
  }
  const seconds = (performance.now() - started) / 1000;
  const committed = batches * batch;
  if (leader.commitIndex < committed) throw new Error("proposals did not all commit");
  return {
    bench: "raft-core",
    nodes: 3,
    payloadBytes: PAYLOAD_BYTES,
    batch,
    committedEntries: committed,
    seconds: Number(seconds.toFixed(2)),
    entriesPerSec: Math.round(committed / seconds),
    heapBytesPerEntry: Math.round(allocated / committed),
  };
}

for (const batch of [1, 16, 256]) console.log(JSON.stringify(bench(batch)));
