// "timeline": where one produce cycle's time goes (see timeline.ts). A warm cluster, a `goulette bench` at
// window 256 and one at window 1 (1 KiB, one partition, RF3), and during each about a second of syscall
// tracepoints from every process; the line gives each stage's median, in ms from the client's send.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Cluster } from "./cluster";
import { emit, errorText, progress } from "./emit";
import { gouletteBench } from "./gbench";
import { runToEnd } from "./proc";
import { scaled, type RunSettings } from "./settings";
import { cycleSpread, cycleStages, findRoles, parsePerfScript, slowest, stageMedians } from "./timeline";

const EVENTS = ["sendto", "recvfrom", "pwrite64", "fdatasync"].flatMap((n) => [`syscalls:sys_enter_${n}`, `syscalls:sys_exit_${n}`]);

export async function timelineSuite(s: RunSettings): Promise<void> {
  const perf = Bun.which("perf");
  if (!perf) {
    emit({ suite: "timeline", skipped: "perf is not installed (apt-get install -y linux-perf)" });
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), "goulette-bench-timeline-"));
  const cluster = await Cluster.start({ mode: "dev" });
  try {
    const warmup = scaled(s, 200_000, 2000);
    progress(`timeline: warm-up ${warmup} x 1 KiB, window 256`);
    await gouletteBench(cluster, { size: 1024, window: 256, partitions: 1, count: warmup, replicas: 3 }, s.runTimeoutMs);
    const brokerPids = cluster.brokers.map((b) => String(b.pid));
    for (const { window, count, bigBytes } of [
      { window: 256, count: scaled(s, 300_000, 30_000), bigBytes: 100_000 },
      { window: 1, count: scaled(s, 20_000, 3_000), bigBytes: 1000 },
    ]) {
      progress(`timeline: window ${window}, ${count} x 1 KiB, tracing about a second of it`);
      try {
        const bench = gouletteBench(cluster, { size: 1024, window, partitions: 1, count, replicas: 3 }, s.runTimeoutMs);
        await Bun.sleep(2000); // past the bench's start-up (topic creation, first leader lookup)
        const data = join(dir, `w${window}.data`);
        const rec = await runToEnd("perf record", [perf, "record", "-a", "-q", "-o", data, ...EVENTS.flatMap((e) => ["-e", e]), "--", "sleep", "1"], 60_000);
        if (rec.code !== 0) throw new Error(`perf record failed (code ${rec.code}): ${rec.stderrTail}`);
        const line = await bench;
        const script = await runToEnd("perf script", [perf, "script", "-i", data, "-F", "comm,pid,tid,time,event,trace"], 120_000);
        const calls = parsePerfScript(script.stdout);
        const roles = findRoles(calls, brokerPids, bigBytes);
        if (!roles) throw new Error(`no client or leader sends of ${bigBytes}+ bytes in the trace (${calls.length} calls)`);
        const rows = cycleStages(calls, roles, bigBytes);
        emit({
          suite: "timeline",
          size: 1024,
          window,
          msgs_per_s: line.msgs_per_s,
          p50_ms: line.p50_ms,
          cycles: rows.length,
          stage_median_ms: stageMedians(rows),
          cycle_ms: cycleSpread(rows),
          // The median cycle is not the mean: throughput is the mean. Which stage grows in the slow cycles.
          slowest_quarter_stage_median_ms: stageMedians(slowest(rows, 0.25)),
          note: "ms from the client's send of a batch; follower stages are the first follower to answer",
        });
      } catch (e) {
        emit({ suite: "timeline", window, error: errorText(e) });
      }
    }
  } finally {
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
