// How long the sentinel takes to bring partitions back to three voters after kill -9 of a broker that
// replicates them: kill -> declared down (health silence) -> every partition back to RF3 with live voters
// (learner added, caught up, promoted, dead one removed). `dev` defaults. One JSON line per run on stdout.
//
//   ./node_modules/.bin/bun bench/sentinel-rf3.ts [--runs 2] [--partitions 4]
import { create } from "@bufbuild/protobuf";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BrokerHealth, ClusterStatusRequestSchema, CreateTopicRequestSchema } from "../src/proto/goulette_pb";
import { WireClient, expectCase } from "../src/wire";

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const runs = flag("runs", 2);
const partitions = flag("partitions", 4);
const giveUpMs = 30_000;

interface Ready {
  sentinel: string;
  brokers: { id: number; address: string; pid: number }[];
}

async function once(run: number): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), "goulette-bench-rf3-"));
  const dev = Bun.spawn([process.execPath, "src/main.ts", "dev", "--brokers", "4", "--port", "0", "--format", "json", "--data-dir", dataDir, "--log-level", "info"], {
    stdout: "pipe",
    // The children's logs (one JSON line each), kept only when asked for: GOULETTE_BENCH_LOG=<file>.
    stderr: process.env.GOULETTE_BENCH_LOG ? Bun.file(process.env.GOULETTE_BENCH_LOG) : "ignore",
    stdin: "pipe",
  });
  let client: WireClient | undefined;
  try {
    const reader = dev.stdout.getReader();
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error("dev exited before it was ready");
      text += new TextDecoder().decode(value);
    }
    const ready = JSON.parse(text.slice(0, text.indexOf("\n"))) as Ready;
    client = new WireClient(ready.sentinel, { requestTimeoutMs: 5_000 });
    const status = async () => expectCase(await client!.call({ case: "clusterStatus", value: create(ClusterStatusRequestSchema, {}) }), "clusterStatusResponse");
    // Brokers register right after they listen; wait until all four are healthy before placing.
    for (const deadline = performance.now() + giveUpMs; ; await Bun.sleep(20)) {
      if ((await status()).brokers.filter((b) => b.health === BrokerHealth.HEALTHY).length === 4) break;
      if (performance.now() > deadline) throw new Error("brokers did not register");
    }
    expectCase(
      await client.call({ case: "createTopic", value: create(CreateTopicRequestSchema, { name: "rf3", partitions, replicas: 3 }) }),
      "createTopicResponse",
    );
    for (const deadline = performance.now() + giveUpMs; ; await Bun.sleep(20)) {
      const st = await status();
      if (st.topics[0]?.partitionMetadata.every((p) => p.leaderId !== 0)) break;
      if (performance.now() > deadline) throw new Error("no leaders elected");
    }
    const st = await status();
    const victimId = st.topics[0]!.partitionMetadata[0]!.leaderId;
    const victim = ready.brokers.find((b) => b.id === victimId)!;
    const affected = st.topics[0]!.partitionMetadata.filter((p) => p.replicas.includes(victimId)).length;

    const killAt = performance.now();
    process.kill(victim.pid, "SIGKILL");
    let downMs: number | undefined;
    let rf3Ms: number | undefined;
    while (rf3Ms === undefined) {
      if (performance.now() - killAt > giveUpMs) throw new Error("RF3 not restored in time");
      const s = await status();
      const now = performance.now() - killAt;
      if (downMs === undefined && s.brokers.find((b) => b.id === victimId)?.health === BrokerHealth.DOWN) downMs = now;
      const alive = new Set(s.brokers.filter((b) => b.health === BrokerHealth.HEALTHY || b.health === BrokerHealth.SUSPICIOUS).map((b) => b.id));
      const whole = s.topics[0]!.partitionMetadata.every(
        (p) => p.replicas.length === 3 && p.learners.length === 0 && p.replicas.every((r) => alive.has(r)) && p.leaderId !== 0,
      );
      if (downMs !== undefined && whole) rf3Ms = now;
      else await Bun.sleep(10);
    }
    console.log(
      JSON.stringify({
        bench: "sentinel-rf3",
        run,
        partitions,
        affectedPartitions: affected,
        killToDownMs: Math.round(downMs!),
        downToRf3Ms: Math.round(rf3Ms - downMs!),
        killToRf3Ms: Math.round(rf3Ms),
      }),
    );
  } finally {
    client?.close();
    dev.kill("SIGTERM");
    await Promise.race([dev.exited, Bun.sleep(5_000)]);
    if (dev.exitCode === null) dev.kill("SIGKILL");
    rmSync(dataDir, { recursive: true, force: true });
  }
}

for (let run = 1; run <= runs; run++) {
  try {
    await once(run);
  } catch (e) {
    console.log(JSON.stringify({ bench: "sentinel-rf3", run, error: (e as Error).message }));
  }
}
