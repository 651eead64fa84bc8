// `bun bench/ab.ts [options] NAME=BINARY NAME=BINARY ...`: which of several goulette builds runs the brokers
// faster, on this machine, now. Runs drift by a third within the hour here (the same build read 45k and 67k
// msg/s), and an idle second cluster beside the measured one costs it a tenth, so two clusters side by side
// cannot tell a 5% change. Instead ONE sentinel and ONE set of data dirs: each round restarts the three
// brokers with each build in turn (same ids, ports and data), warms them up, and measures; the builds
// alternate round after round, so drift spreads over all of them. The client is one build throughout
// (`--client`, default the first), so only the brokers differ. One JSON line per build on stdout:
// every run's msgs/s, the median and mean, median p50/p99/p999, and disk flushes per 1,000 messages.
//
//   bun run build && cp dist/goulette /tmp/a     # then change something, build again, cp to /tmp/b
//   bun bench/ab.ts --rounds 4 --count 200000 a=/tmp/a b=/tmp/b -- --window 256 --size 1024
//
// Everything after `--` goes to every `goulette bench` call. The first run after a restart reads low even
// after a warm-up of 100k (JIT tiers): --warmup defaults to 200k.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { emit, errorText, progress, round } from "./lib/emit";
import { listening } from "./lib/cluster";
import { type Child, jsonLines, runToEnd, spawn, stop, stopAll } from "./lib/proc";
import { cpuSplit, deviceFlushes } from "./lib/procfs";

interface Build {
  name: string;
  binary: string;
  msgsPerS: number[];
  latency: [number, number, number][];
  flushesPer1k: number[];
  /** Per run: the three brokers' user and system CPU seconds together, per 100,000 messages. */
  cpuPer100k: [number, number][];
}

function parse(argv: string[]): { rounds: number; count: number; warmup: number; runs: number; client?: string; builds: Build[]; extra: string[] } {
  const dash = argv.indexOf("--");
  const extra = dash >= 0 ? argv.slice(dash + 1) : [];
  const args = dash >= 0 ? argv.slice(0, dash) : argv;
  const o = { rounds: 4, count: 200_000, warmup: 200_000, runs: 2, client: undefined as string | undefined, builds: [] as Build[], extra };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const num = (name: string) => {
      const v = Number(args[++i]);
      if (!Number.isInteger(v) || v < 0) throw new Error(`${name} needs a whole number, got ${args[i]}`);
      return v;
    };
    if (a === "--rounds") o.rounds = num(a);
    else if (a === "--count") o.count = num(a);
    else if (a === "--warmup") o.warmup = num(a);
    else if (a === "--runs") o.runs = num(a);
    else if (a === "--client") o.client = args[++i];
    else if (/^[\w.-]+=.+/.test(a)) {
      const at = a.indexOf("=");
      o.builds.push({ name: a.slice(0, at), binary: a.slice(at + 1), msgsPerS: [], latency: [], flushesPer1k: [], cpuPer100k: [] });
    } else throw new Error(`unknown argument ${a} (builds are NAME=BINARY)`);
  }
  if (o.builds.length < 2) throw new Error("give at least two builds as NAME=BINARY");
  if (o.rounds < 1 || o.runs < 1 || o.count < 1) throw new Error("--rounds, --runs and --count must be at least 1");
  return o;
}

/** A free loopback port (the kernel's pick for port 0, released at once). */
function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

async function bench(client: string, sentinel: string, count: number, extra: string[]): Promise<Record<string, unknown>> {
  const r = await runToEnd("goulette bench", [client, "bench", "--sentinel", sentinel, "--count", String(count), ...extra], 600_000);
  const line = jsonLines(r.stdout).find((l) => l.system === "goulette");
  if (!line) throw new Error(`goulette bench failed (code ${r.code}): ${r.stderrTail}`);
  return line;
}

/** The brokers' CPU so far, summed (a broker that already exited counts nothing: its run is failing anyway). */
function brokersCpu(brokers: Child[]): { user: number; system: number } {
  const sum = { user: 0, system: 0 };
  for (const c of brokers) {
    try {
      const s = cpuSplit(c.proc.pid);
      sum.user += s.user;
      sum.system += s.system;
    } catch {
      // gone
    }
  }
  return sum;
}

const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  const client = o.client ?? o.builds[0]!.binary;
  const dir = mkdtempSync(join(tmpdir(), "goulette-ab-"));
  const sentinelPort = freePort();
  const brokerPorts = [freePort(), freePort(), freePort()];
  const sentinel = `127.0.0.1:${sentinelPort}`;
  mkdirSync(join(dir, "b1"));
  const diskFlushes = deviceFlushes(join(dir, "b1")) ?? (() => Number.NaN);
  const s = spawn("sentinel", [client, "sentinel", "--listen", sentinel, "--data-dir", join(dir, "sentinel")]);
  try {
    await listening(s);
    for (let r = 1; r <= o.rounds; r++) {
      for (const b of o.builds) {
        const brokers = brokerPorts.map((port, i) =>
          spawn(`broker ${i + 1} (${b.name})`, [b.binary, "broker", "--id", String(i + 1), "--listen", `127.0.0.1:${port}`, "--sentinel", sentinel, "--data-dir", join(dir, `b${i + 1}`)]),
        );
        try {
          await Promise.all(brokers.map((c) => listening(c)));
          if (o.warmup > 0) await bench(client, sentinel, o.warmup, o.extra);
          for (let k = 0; k < o.runs; k++) {
            const f0 = diskFlushes();
            const c0 = brokersCpu(brokers);
            const line = await bench(client, sentinel, o.count, o.extra);
            const f1 = diskFlushes();
            const c1 = brokersCpu(brokers);
            b.cpuPer100k.push([((c1.user - c0.user) * 100_000) / o.count, ((c1.system - c0.system) * 100_000) / o.count]);
            b.msgsPerS.push(Number(line.msgs_per_s));
            b.latency.push([Number(line.p50_ms), Number(line.p99_ms), Number(line.p999_ms)]);
            b.flushesPer1k.push(((f1 - f0) * 1000) / o.count);
          }
          progress(`round ${r}, ${b.name}: ${b.msgsPerS.slice(-o.runs).join(", ")} msg/s`);
        } finally {
          await Promise.all(brokers.map((c) => stop(c)));
        }
      }
    }
    for (const b of o.builds) {
      emit({
        suite: "ab",
        build: b.name,
        binary: b.binary,
        runs: b.msgsPerS,
        msgs_per_s_median: round(median(b.msgsPerS), 0),
        msgs_per_s_mean: round(b.msgsPerS.reduce((a, x) => a + x, 0) / b.msgsPerS.length, 0),
        p50_p99_p999_ms_median: [0, 1, 2].map((i) => round(median(b.latency.map((l) => l[i]!)), 2)),
        disk_flushes_per_1k_msgs: round(median(b.flushesPer1k), 1),
        broker_cpu_s_per_100k_msgs_median: { user: round(median(b.cpuPer100k.map((c) => c[0])), 2), system: round(median(b.cpuPer100k.map((c) => c[1])), 2) },
        bench_args: o.extra,
      });
    }
  } finally {
    await stop(s);
    rmSync(dir, { recursive: true, force: true });
  }
}

for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => void stopAll().finally(() => process.exit(130)));
main().catch(async (e) => {
  process.stderr.write(`ab: ${errorText(e)}\n`);
  await stopAll();
  process.exit(1);
});
