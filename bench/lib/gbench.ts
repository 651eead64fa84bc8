// Runs `goulette bench` against a cluster as its own process (as a user would) and returns its JSON line.
import type { Cluster } from "./cluster";
import { jsonLines, runToEnd } from "./proc";

export interface BenchParams {
  count: number;
  size: number;
  window: number;
  replicas: number;
  partitions: number;
  /** Keep the data in this topic (the CLI deletes its fresh topic otherwise). */
  topic?: string;
}

export async function gouletteBench(cluster: Cluster, p: BenchParams, timeoutMs: number): Promise<Record<string, unknown>> {
  const argv = [
    ...cluster.command.argv,
    "bench",
    "--count", String(p.count),
    "--size", String(p.size),
    "--window", String(p.window),
    "--replicas", String(p.replicas),
    "--partitions", String(p.partitions),
    "--sentinel", cluster.sentinel,
    ...(p.topic ? ["--topic", p.topic] : []),
  ];
  const r = await runToEnd("goulette bench", argv, timeoutMs);
  const line = jsonLines(r.stdout).find((l) => l.system === "goulette");
  if (!line) {
    throw new Error(r.timedOut ? `goulette bench did not finish in ${timeoutMs} ms` : `goulette bench failed (code ${r.code}): ${r.stderrTail}`);
  }
  return line;
}
