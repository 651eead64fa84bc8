// "profile": one `goulette bench` (1 KiB, window 256, one partition, RF3) against brokers running under
// `bun --cpu-prof`, then the top self-time functions of the leader and of a follower: what limits the
// figures of the system suite.
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Cluster } from "./cluster";
import { emit, errorText, progress, round } from "./emit";
import { cpuSeconds } from "./procfs";
import { gouletteBench } from "./gbench";
import { summarizeProfile } from "./cpu-profile";
import { scaled, type RunSettings } from "./settings";
import { describe } from "./topics";

export async function profileSuite(s: RunSettings): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "goulette-bench-prof-"));
  const ids = [1, 2, 3];
  let leader = 0;
  try {
    const cluster = await Cluster.start({ mode: "direct", profile: { ids, dir } });
    try {
      const count = scaled(s, 100_000, 2000);
      progress(`profile: goulette bench ${count} x 1 KiB, window 256, brokers under --cpu-prof`);
      const pids = cluster.brokers.map((b) => b.pid);
      const cpu0 = pids.map(cpuSeconds);
      const t0 = performance.now();
      const line = await gouletteBench(cluster, { count, size: 1024, window: 256, replicas: 3, partitions: 1, topic: "prof" }, s.runTimeoutMs);
      const wallS = (performance.now() - t0) / 1000;
      emit({
        suite: "profile",
        ...line,
        partitions: 1,
        // From /proc, independent of the profiler: a broker far below 100% is waiting, not computing.
        broker_cpu_pct_of_core_during_bench: pids.map((p, i) => round(((cpuSeconds(p) - cpu0[i]!) / wallS) * 100, 1)),
        note: "brokers run under the profiler from source; CPU share over the whole bench command (topic creation included)",
      });
      leader = (await describe(cluster.sentinel, "prof")).partitionInfo[0]?.leader ?? 0;
    } finally {
      await cluster.stop(); // SIGTERM: each broker exits and writes its profile
    }
    const files = readdirSync(dir);
    for (const id of ids) {
      const role = id === leader ? "leader" : "follower";
      if (role === "follower" && id !== ids.find((x) => x !== leader)) continue; // one follower is enough
      const file = files.find((f) => f === `broker-${id}.cpuprofile`);
      if (!file) {
        emit({ suite: "profile", broker: id, role, error: `no profile written (files: ${files.join(", ") || "none"})` });
        continue;
      }
      try {
        emit({ suite: "profile", broker: id, role, ...summarizeProfile(join(dir, file)) });
      } catch (e) {
        emit({ suite: "profile", broker: id, role, error: errorText(e) });
      }
    }
  } finally {
    if (process.env.BENCH_KEEP !== "1") rmSync(dir, { recursive: true, force: true });
    else progress(`profile: profiles kept in ${dir}`);
  }
}
