// "system" (and its subset "broker"): Goulette beside NATS JetStream and RabbitMQ quorum queues with the
// same message size, count, window and replication factor in the same run, the ratios, and the machine's
// limits measured in that run too (they drift with what else the shared machine does).
import { Cluster } from "./cluster";
import { emit, errorText, progress, round, type Line } from "./emit";
import { gouletteBench } from "./gbench";
import { tmpdir } from "node:os";
import { fdatasyncRate, loopbackTcp, SEGMENT_MODES, walBesideSegments, writeBytesPerFdatasync } from "./machine";
import { deviceWriteBytes } from "./procfs";
import { peers, runPeer, type Peer } from "./peers";
import { scaled, type RunSettings } from "./settings";

interface Config {
  size: number;
  window: number;
  partitions: number;
  count: number;
}

const replicas = 3;
/** Unmeasured messages through a new cluster before the first measured run (see systemSuite). */
const WARMUP_MSGS = 500_000;
/** Then unmeasured messages at window 1, whose code paths (one small round at a time) are its own. */
const WARMUP_W1_MSGS = 20_000;

function configs(s: RunSettings, only1Partition1KiB: boolean): Config[] {
  const w256 = scaled(s, 100_000, 1000);
  const w1 = scaled(s, 20_000, 200);
  const big = scaled(s, 10_000, 200);
  const all: Config[] = [
    { size: 1024, window: 256, partitions: 1, count: w256 },
    { size: 1024, window: 256, partitions: 8, count: w256 },
    { size: 1024, window: 1, partitions: 1, count: w1 },
    { size: 1024, window: 1, partitions: 8, count: w1 },
    { size: 65536, window: 256, partitions: 1, count: big },
    { size: 65536, window: 256, partitions: 8, count: big },
  ];
  return only1Partition1KiB ? all.filter((c) => c.partitions === 1 && c.size === 1024) : all;
}

export async function systemSuite(s: RunSettings, suite: "system" | "broker"): Promise<void> {
  const list = configs(s, suite === "broker");
  if (suite === "system") machineLimits(s);
  if (suite === "system") syncCharge();
  if (suite === "system") await tcpLimit(s);
  if (suite === "system") await segmentCost(s);

  const mine: Line[] = [];
  const cluster = await Cluster.start({ mode: "dev" });
  try {
    // A broker runs for days: measure it warm. The first ~200 MB through a new broker zero-fill its WAL
    // segments (later ones are recycled), its code is still being compiled, and its memory grows to its
    // working size, each new page faulted in (dear on a VM whose host takes freed pages back). Restarted on
    // their existing data (bench/ab.ts, 4 restarts), brokers gave 26-35k, 30-36k, 38-65k, 51-64k and 47-58k
    // msg/s in their first five runs of 100,000 messages, ~30,000 page faults per run until the growth
    // stopped; 200,000 of warm-up left the measured line on that slope (38.9k where a warm cluster gave
    // 51-60k). The growth is smaller since the Raft log in memory is bounded by bytes, the slope shorter.
    // Window 1 runs other code (a round per message, the timers between): the brokers' JIT compiles it during
    // the first tens of thousands of such messages, and meanwhile the compiler threads take CPU from the
    // chain (4 x 10,000 messages on one cluster: p50 1.65, 1.19, 1.02, 1.03 ms; p99 5.7, 5.0, 4.3, 4.3 ms).
    const warmups = [
      { window: 256, count: scaled(s, WARMUP_MSGS, 1000) },
      { window: 1, count: scaled(s, WARMUP_W1_MSGS, 200) },
    ];
    for (const { window, count } of warmups) {
      progress(`goulette: warm-up, ${count} x 1 KiB, window ${window} (not measured)`);
      try {
        const w = await gouletteBench(cluster, { size: 1024, window, partitions: 1, count, replicas }, s.runTimeoutMs);
        emit({ suite, system: "goulette", warmup: true, ...w });
      } catch (e) {
        emit({ suite, system: "goulette", warmup: true, window, error: errorText(e) });
      }
    }
    const diskWritten = deviceWriteBytes(cluster.dir);
    for (const c of list) {
      progress(`goulette: ${c.count} x ${c.size} B, window ${c.window}, ${c.partitions} partition(s), RF${replicas}`);
      try {
        const before = diskWritten?.();
        const line: Line = { suite, ...(await gouletteBench(cluster, { ...c, replicas }, s.runTimeoutMs)), partitions: c.partitions };
        const after = diskWritten?.();
        const measuredS = typeof line.msgs_per_s === "number" && line.msgs_per_s > 0 ? c.count / line.msgs_per_s : undefined;
        if (before !== undefined && after !== undefined && Number.isFinite(after - before) && measuredS !== undefined) {
          // The whole command's writes (setup and the tail written back after it included) over its
          // measured seconds: an upper bound, to set beside the disk's limit above.
          line.disk_write_mb_per_s = round((after - before) / 1e6 / measuredS, 1);
          line.disk_bytes_per_payload_byte = round((after - before) / (c.count * c.size), 2);
        }
        emit(line);
        mine.push(line);
      } catch (e) {
        emit({ suite, system: "goulette", ...c, replicas, error: errorText(e) });
      }
    }
  } finally {
    await cluster.stop();
  }

  // One peer run per size and window: the peers have no partitions; both Goulette lines compare with it.
  const peerRuns = uniqueBy(list, (c) => `${c.size}/${c.window}`);
  for (const peer of peers) {
    let broken: string | undefined;
    for (const c of peerRuns) {
      if (broken) {
        emit({ suite, system: peer.system, size: c.size, window: c.window, count: c.count, replicas, skipped: `an earlier run failed: ${broken}` });
        continue;
      }
      progress(`${peer.system}: ${c.count} x ${c.size} B, window ${c.window}, R${replicas}`);
      try {
        const line = { suite, ...(await runPeer(peer, { ...c, replicas }, s.peerTimeoutMs)) };
        emit(line);
        for (const g of mine) if (g.size === c.size && g.window === c.window) emit(ratio(suite, g, line, peer));
      } catch (e) {
        broken = errorText(e);
        emit({ suite, system: peer.system, size: c.size, window: c.window, count: c.count, replicas, error: `could not run: ${broken}` });
      }
    }
  }
}

function machineLimits(s: RunSettings): void {
  const ms = Math.max(500, Math.round(3000 * Math.min(1, s.scale * 10)));
  for (const bytes of [4096, 65536, 1024 * 1024]) {
    progress(`machine: fdatasync after ${bytes} B overwrites of a zero-filled file, ${ms} ms`);
    try {
      emit(fdatasyncRate(bytes, ms));
    } catch (e) {
      emit({ suite: "machine", limit: "fdatasync", write_bytes: bytes, error: errorText(e) });
    }
  }
}

function syncCharge(): void {
  try {
    emit({ suite: "machine", limit: "write_bytes_per_fdatasync", bytes: writeBytesPerFdatasync(tmpdir()) });
  } catch (e) {
    emit({ suite: "machine", limit: "write_bytes_per_fdatasync", error: errorText(e) });
  }
}

async function tcpLimit(s: RunSettings): Promise<void> {
  const ms = Math.max(500, Math.round(3000 * Math.min(1, s.scale * 10)));
  progress(`machine: loopback TCP, one connection, ${ms} ms`);
  try {
    emit(await loopbackTcp(ms));
  } catch (e) {
    emit({ suite: "machine", limit: "loopback_tcp", error: errorText(e) });
  }
}

async function segmentCost(s: RunSettings): Promise<void> {
  const ms = Math.max(500, Math.round(3000 * Math.min(1, s.scale * 10)));
  // 263,000 bytes: one round of 1 KiB messages at window 256 (a batch and its framing).
  progress(`machine: three WALs with a partition segment beside each, ${SEGMENT_MODES.join(" / ")}, ${ms} ms each`);
  try {
    for (const line of await walBesideSegments(ms, 263_000)) emit(line);
  } catch (e) {
    emit({ suite: "machine", limit: "wal_beside_segment", error: errorText(e) });
  }
}

/** Above 1 is better for Goulette in msgs/s and MB/s; below 1 is better for Goulette in the latency ratios. */
function ratio(suite: string, g: Line, p: Line, peer: Peer): Line {
  const div = (a: unknown, b: unknown) => (typeof a === "number" && typeof b === "number" && b > 0 ? round(a / b, 2) : null);
  return {
    suite,
    ratio: `goulette/${peer.system}`,
    size: g.size,
    window: g.window,
    partitions: g.partitions,
    msgs_per_s_ratio: div(g.msgs_per_s, p.msgs_per_s),
    mb_per_s_ratio: div(g.mb_per_s, p.mb_per_s),
    p50_ratio: div(g.p50_ms, p.p50_ms),
    p99_ratio: div(g.p99_ms, p.p99_ms),
    peer_durability: peer.durability,
  };
}

function uniqueBy<T>(xs: T[], key: (x: T) => string): T[] {
  const seen = new Set<string>();
  return xs.filter((x) => (seen.has(key(x)) ? false : (seen.add(key(x)), true)));
}
