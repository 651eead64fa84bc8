// The peers' own scripts (../shared/peers), run as they are documented: env COUNT SIZE WINDOW REPLICAS,
// one JSON line on stdout. Each runs in its own process group so a timeout reaches the servers it started.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "./goulette";
import { jsonLines, runToEnd } from "./proc";

export const peers = [
  { system: "nats-jetstream", script: "run-nats.sh", durability: "acknowledged once a majority holds it in memory; no fsync" },
  { system: "rabbitmq-quorum", script: "run-rabbit.sh", durability: "confirmed after a majority fdatasynced it" },
] as const;

export type Peer = (typeof peers)[number];

export const peersDir = join(repoRoot, "../shared/peers");

export async function runPeer(
  peer: Peer,
  p: { count: number; size: number; window: number; replicas: number },
  timeoutMs: number,
): Promise<Record<string, unknown>> {
  const script = join(peersDir, peer.script);
  if (!existsSync(script)) throw new Error(`${script} not found`);
  const r = await runToEnd(peer.system, ["bash", script], timeoutMs, {
    cwd: repoRoot,
    env: { COUNT: String(p.count), SIZE: String(p.size), WINDOW: String(p.window), REPLICAS: String(p.replicas) },
  });
  const line = jsonLines(r.stdout).find((l) => l.system === peer.system);
  if (!line) {
    throw new Error(r.timedOut ? `no result within ${timeoutMs} ms` : `exit code ${r.code}: ${r.stderrTail || "no output"}`);
  }
  return line;
}
