// "scale": what 1,000 idle partitions (RF3, three brokers) cost each broker in CPU and memory, and how long
// brokers holding ~1 GB of log take to serve again after all of them were killed with kill -9.
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { Consumer } from "../../src/client/consumer";
import { Producer } from "../../src/client/producer";
import { Cluster } from "./cluster";
import { emit, errorText, progress, round } from "./emit";
import { gouletteBench } from "./gbench";
import { Load } from "./load";
import { cpuSeconds, cpuShare, rssBytes, writeBytes } from "./procfs";
import { type RunSettings } from "./settings";
import { createTopicWithLeaders } from "./topics";

const replicas = 3;
const idlePartitions = 1000;
const cpuWindowMs = 10_000;
const serveWithinMs = 600_000;

export async function scaleSuite(s: RunSettings): Promise<void> {
  try {
    await idle(s);
  } catch (e) {
    emit({ suite: "scale", test: "idle", partitions: idlePartitions, error: errorText(e) });
  }
  try {
    await restart(s);
  } catch (e) {
    emit({ suite: "scale", test: "restart", error: errorText(e) });
  }
}

async function idle(s: RunSettings): Promise<void> {
  const cluster = await Cluster.start({ mode: "direct" });
  try {
    const sentinelPid = cluster.sentinelPid;
    const pids = cluster.brokers.map((b) => b.pid);
    const empty = await cpuShare(pids, Math.min(cpuWindowMs, 3000));
    progress(`scale: creating ${idlePartitions} partitions RF${replicas}`);
    const t0 = performance.now();
    await createTopicWithLeaders(cluster.sentinel, "idle", idlePartitions, replicas, serveWithinMs);
    const createMs = performance.now() - t0;
    await Bun.sleep(s.scale >= 1 ? 10_000 : 3000); // elections and first hard-state writes are over
    progress(`scale: sampling CPU for ${cpuWindowMs} ms`);
    const all = sentinelPid ? [...pids, sentinelPid] : pids;
    const written0 = pids.map(writeBytes);
    const t1 = performance.now();
    const share = await cpuShare(all, cpuWindowMs);
    const writtenPerS = pids.map((p, i) => Math.round((writeBytes(p) - written0[i]!) / ((performance.now() - t1) / 1000)));
    emit({
      suite: "scale",
      test: "idle",
      partitions: idlePartitions,
      replicas,
      create_and_elect_ms: Math.round(createMs),
      broker_cpu_pct_of_core: share.slice(0, pids.length).map((x) => round(x * 100, 1)),
      broker_cpu_pct_before_topic: empty.map((x) => round(x * 100, 1)),
      broker_rss_mb: pids.map((p) => round(rssBytes(p) / 1e6, 1)),
      broker_idle_write_bytes_per_s: writtenPerS,
      ...(sentinelPid ? { sentinel_cpu_pct_of_core: round(share[pids.length]! * 100, 1), sentinel_rss_mb: round(rssBytes(sentinelPid) / 1e6, 1) } : {}),
      cpu_window_ms: cpuWindowMs,
    });
    await loaded(s, cluster, all);
  } catch (e) {
    throw new Error(`${errorText(e)}; cluster log: ${cluster.notableLog().join(" || ") || "nothing notable"}`);
  } finally {
    await cluster.stop();
  }
}

/**
 * The same 1,000 partitions under load: window 256 of 1 KiB messages sent to each partition in turn, so
 * every batch is one message and every partition's group works (the case where per-partition costs show:
 * ticks, status reports, Raft messages per group).
 */
async function loaded(s: RunSettings, cluster: Cluster, pids: number[]): Promise<void> {
  const load = new Load({ sentinel: cluster.sentinel, topic: "idle", size: 1024, window: 256, partitions: idlePartitions });
  try {
    load.start();
    await Bun.sleep(s.scale >= 1 ? 10_000 : 5_000); // warm: every group awake, JIT tiers up
    const cpu0 = pids.map(cpuSeconds);
    const acked0 = load.acked;
    const t0 = performance.now();
    await Bun.sleep(cpuWindowMs);
    const seconds = (performance.now() - t0) / 1000;
    const msgsPerS = (load.acked - acked0) / seconds;
    const cores = pids.map((p, i) => (cpuSeconds(p) - cpu0[i]!) / seconds);
    const brokerCores = cores.slice(0, cluster.brokers.length);
    await load.stop();
    if (load.failed > 0) throw new Error(`${load.failed} messages failed: ${errorText(load.firstError)}`);
    emit({
      suite: "scale",
      test: "loaded",
      partitions: idlePartitions,
      replicas,
      size: 1024,
      window: 256,
      msgs_per_s: Math.round(msgsPerS),
      broker_cpu_pct_of_core: brokerCores.map((x) => round(x * 100, 1)),
      broker_cpu_ms_per_msg: round((brokerCores.reduce((a, b) => a + b, 0) / msgsPerS) * 1000, 3),
      ...(cores.length > brokerCores.length ? { sentinel_cpu_pct_of_core: round(cores[brokerCores.length]! * 100, 1) } : {}),
      cpu_window_ms: cpuWindowMs,
    });
  } finally {
    await load.close();
  }
}

async function restart(s: RunSettings): Promise<void> {
  const targetBytes = Math.max(32e6, Math.round(1e9 * s.scale));
  const size = 65536;
  const count = Math.ceil(targetBytes / size);
  const cluster = await Cluster.start({ mode: "direct" });
  try {
    progress(`scale: writing ${Math.round(targetBytes / 1e6)} MB of log (${count} x 64 KiB, RF${replicas})`);
    const line = await gouletteBench(cluster, { count, size, window: 64, replicas, partitions: 1, topic: "big" }, s.runTimeoutMs);
    emit({ suite: "scale", test: "restart-fill", ...line });
    const logBytes = cluster.brokers.map((b) => dirBytes(b.dataDir));

    progress("scale: kill -9 every broker, then restart them");
    for (const b of cluster.brokers) cluster.killBroker(b.id);
    await Promise.all(cluster.brokers.map((b) => b.child?.proc.exited));
    const t0 = performance.now();
    const listenMs: number[] = [];
    await Promise.all(
      cluster.brokers.map(async (b, i) => {
        await cluster.restartBroker(b.id);
        listenMs[i] = Math.round(performance.now() - t0);
      }),
    );

    const producer = new Producer({ sentinels: [cluster.sentinel], deliveryTimeoutMs: serveWithinMs });
    const consumer = new Consumer({ sentinels: [cluster.sentinel], maxWaitMs: 500 });
    try {
      const produced = producer.send("big", [{ value: "after-restart", partition: 0 }]).then(() => performance.now() - t0);
      const fetched = (async () => {
        consumer.assign([{ topic: "big", partition: 0, from: 0 }]);
        while (performance.now() - t0 < serveWithinMs) {
          const got = await consumer.poll(500, 1).catch(() => []);
          if (got.length > 0) {
            if (got[0]!.offset !== 0) throw new Error(`fetch from offset 0 returned offset ${got[0]!.offset} first`);
            return performance.now() - t0;
          }
        }
        throw new Error(`no fetch from offset 0 within ${serveWithinMs} ms`);
      })();
      const [produceMs, fetchMs] = await Promise.all([produced, fetched]);
      emit({
        suite: "scale",
        test: "restart",
        replicas,
        data_dir_mb_per_broker: logBytes.map((b) => round(b / 1e6, 1)),
        listening_ms: listenMs,
        first_produce_ack_ms: Math.round(produceMs),
        first_fetch_from_0_ms: Math.round(fetchMs),
        serving_ms: Math.round(Math.max(produceMs, fetchMs)),
        note: "times from the restart of three brokers killed with kill -9",
      });
    } finally {
      await consumer.close().catch(() => {});
      await producer.close().catch(() => {});
    }
  } catch (e) {
    throw new Error(`${errorText(e)}; cluster log: ${cluster.notableLog().join(" || ") || "nothing notable"}`);
  } finally {
    await cluster.stop();
  }
}

function dirBytes(dir: string): number {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    total += statSync(join(e.parentPath, e.name)).size;
  }
  return total;
}
