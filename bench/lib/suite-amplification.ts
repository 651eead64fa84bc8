// "amplification": bytes each broker writes to disk per payload byte it replicates, and fdatasyncs per
// second per broker, at 1 and at 1,000 partitions. The design promises about 2 (WAL + segment) and a sync
// count per tick that does not grow with the partition count.
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { Cluster } from "./cluster";
import { emit, errorText, progress, round } from "./emit";
import { Load } from "./load";
import { writeBytesPerFdatasync } from "./machine";
import { countSyncs, deviceWriteBytes, straceAvailable, writeBytes, type SyncCounts } from "./procfs";
import { type RunSettings } from "./settings";
import { createTopicWithLeaders } from "./topics";

const replicas = 3;
const size = 1024;
const window = 256;
/** Lets followers apply what was acknowledged (segment writes trail the ack) before counters are read. */
const settleMs = 1000;
const idleMs = 3000;

export async function amplificationSuite(s: RunSettings): Promise<void> {
  for (const partitions of [1, 1000]) {
    try {
      await atPartitions(s, partitions);
    } catch (e) {
      emit({ suite: "amplification", partitions, error: errorText(e) });
    }
  }
}

async function atPartitions(s: RunSettings, partitions: number): Promise<void> {
  const measureMs = Math.max(3000, Math.round(20_000 * Math.min(1, s.scale * 10)));
  const cluster = await Cluster.start({ mode: "dev" });
  let load: Load | undefined;
  try {
    progress(`amplification: creating ${partitions} partition(s), RF${replicas}`);
    const t0 = performance.now();
    await createTopicWithLeaders(cluster.sentinel, "amp", partitions, replicas, 600_000);
    const createMs = Math.round(performance.now() - t0);

    // Warm up (connections, leaders found, first segments created), then measure a load of its own so
    // that exactly the acknowledged messages' bytes are on both sides of the counters.
    const warm = new Load({ sentinel: cluster.sentinel, topic: "amp", size, window, partitions });
    warm.start();
    await Bun.sleep(Math.min(2000, measureMs / 2));
    await warm.stop();
    await warm.close();
    await Bun.sleep(settleMs);

    const pids = cluster.brokers.map((b) => b.pid);
    // What the brokers write with no traffic at all (ticks, hard state, checkpoints): at 1,000 partitions
    // this alone can exceed the payload, so it is reported apart and subtracted in one of the figures.
    const idle0 = pids.map(writeBytes);
    const tIdle = performance.now();
    await Bun.sleep(idleMs);
    const idleS = (performance.now() - tIdle) / 1000;
    const idleRate = pids.map((p, i) => (writeBytes(p) - idle0[i]!) / idleS);
    const before = pids.map(writeBytes);
    const walBefore = cluster.brokers.map((b) => fileBytes(b.dataDir, true));
    const logBefore = cluster.brokers.map((b) => fileBytes(b.dataDir, false));
    // What reaches the device, the truth write_bytes only approximates: everything dirty is written out
    // before the first reading and again before the last, so the difference is exactly what the load
    // caused (all three brokers share the disk; nothing else writes meanwhile).
    const device = deviceWriteBytes(cluster.dir);
    syncAll();
    const deviceBefore = device?.();
    load = new Load({ sentinel: cluster.sentinel, topic: "amp", size, window, partitions });
    const t1 = performance.now();
    load.start();
    await Bun.sleep(measureMs);
    await load.stop();
    const seconds = (performance.now() - t1) / 1000;
    await Bun.sleep(settleMs);
    const after = pids.map(writeBytes);
    syncAll();
    const deviceWritten = device && deviceBefore !== undefined ? device() - deviceBefore : undefined;
    const written = after.map((a, i) => a - before[i]!);
    const walGrowth = cluster.brokers.map((b, i) => fileBytes(b.dataDir, true) - walBefore[i]!);
    const logGrowth = cluster.brokers.map((b, i) => fileBytes(b.dataDir, false) - logBefore[i]!);
    const steady = written.map((w, i) => w - Math.max(0, walGrowth[i]!));
    const measuredS = seconds + settleMs / 1000;
    const loadOnly = steady.map((w, i) => w - idleRate[i]! * measuredS);
    const payload = load.payloadBytesAcked;
    if (payload === 0) throw new Error(`no message acknowledged in ${measureMs} ms: ${errorText(load.firstError)}`);
    const measured = {
      suite: "amplification",
      partitions,
      replicas,
      size,
      window,
      acked: load.acked,
      failed: load.failed,
      msgs_per_s: Math.round(load.acked / seconds),
      payload_bytes: payload,
      broker_write_bytes: written,
      write_amplification: round(written.reduce((a, b) => a + b, 0) / (payload * replicas), 3),
      per_broker_amplification: written.map((w) => round(w / payload, 3)),
      // A new WAL segment is zero-filled once when created, then reused: a short run that happens to create
      // one pays it entirely. This figure leaves that out; a long run converges towards it.
      wal_files_growth_bytes: walGrowth,
      write_amplification_without_wal_prealloc: round(steady.reduce((a, b) => a + b, 0) / (payload * replicas), 3),
      idle_write_bytes_per_s: idleRate.map((r) => Math.round(r)),
      write_amplification_minus_idle: round(loadOnly.reduce((a, b) => a + b, 0) / (payload * replicas), 3),
      // What the partition logs grew by (apparent file sizes, WAL excluded): the floor a segment copy costs.
      partition_log_growth_per_payload_byte: logGrowth.map((g) => round(g / payload, 3)),
      // Sectors the disk wrote (journal and metadata included), per payload byte per replica.
      device_write_amplification: deviceWritten === undefined ? null : round(deviceWritten / (payload * replicas), 3),
      // ... less the zero-filling of WAL segments created during the run (once per segment, then reused).
      device_write_amplification_without_wal_prealloc:
        deviceWritten === undefined ? null : round((deviceWritten - walGrowth.reduce((a, b) => a + Math.max(0, b), 0)) / (payload * replicas), 3),
      create_ms: createMs,
      note: "write_bytes from /proc/<pid>/io (bytes dirtied for storage) over the measured load plus a settle period, per payload byte per replica",
    };
    emit(measured);

    if (!straceAvailable()) {
      emit({ suite: "amplification", partitions, fdatasync: "not measured: strace is not installed (apt-get install -y strace)" });
      return;
    }
    // A second load under strace: tracing slows the traced calls, so its throughput is not the figure above.
    const traceMs = Math.max(2000, Math.round(10_000 * Math.min(1, s.scale * 10)));
    const traced = new Load({ sentinel: cluster.sentinel, topic: "amp", size, window, partitions });
    traced.start();
    await Bun.sleep(500);
    const counts = await countSyncs(pids, traceMs);
    await traced.stop();
    await traced.close();
    emit({
      suite: "amplification",
      partitions,
      replicas,
      traced_ms: traceMs,
      acked_while_traced: traced.acked,
      fdatasync_per_s: counts.map((c) => Math.round(c.fdatasync / c.seconds)),
      fsync_per_s: counts.map((c) => Math.round(c.fsync / c.seconds)),
      fdatasync_wall_us_per_call: counts.map((c) => c.fdatasyncUsPerCall),
      fdatasync_per_1k_msgs: traced.acked > 0 ? counts.map((c) => round((c.fdatasync * 1000) / traced.acked, 1)) : null,
      ...netOfSyncCharge(cluster.dir, counts, traced.acked, load.acked, loadOnly, payload),
      note: "per broker (ids 1..3), strace -c -w -f -p for traced_ms under load; acked_while_traced spans the trace and its ramp",
    });
  } catch (e) {
    throw new Error(`${errorText(e)}; cluster log: ${cluster.notableLog().join(" || ") || "nothing notable"}`);
  } finally {
    await load?.close();
    await cluster.stop();
  }
}

/**
 * write_amplification_minus_idle without what the kernel charges to write_bytes per fdatasync (measured on
 * the same file system): the sync count of the measured load is estimated from the traced one per message.
 */
function netOfSyncCharge(
  dir: string,
  counts: SyncCounts[],
  tracedAcked: number,
  measuredAcked: number,
  loadOnly: number[],
  payload: number,
): Record<string, unknown> {
  if (tracedAcked === 0) return {};
  const perSync = writeBytesPerFdatasync(dir);
  const net = loadOnly.map((w, i) => w - (counts[i]!.fdatasync / tracedAcked) * measuredAcked * perSync);
  return {
    write_bytes_charged_per_fdatasync: perSync,
    write_amplification_net_of_sync_charge: round(net.reduce((a, b) => a + b, 0) / (payload * replicas), 3),
  };
}

/** Writes every dirty page of every file system out (the sync(1) command), so device counters are settled. */
function syncAll(): void {
  const r = Bun.spawnSync(["sync"]);
  if (r.exitCode !== 0) throw new Error(`sync failed: ${r.stderr.toString()}`);
}

/** Apparent size of the WAL files (segments and spares), or of every other file, under a broker's data dir. */
function fileBytes(dir: string, wal: boolean): number {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && e.name.endsWith(".wal") === wal) total += statSync(join(e.parentPath, e.name)).size;
  }
  return total;
}
