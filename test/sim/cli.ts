// bun test/sim/cli.ts --seeds N [--seed S] [--steps K] [--lost-tails] [--pipeline]
// Runs N seeds starting at S (default 1); prints one JSON line per failure with a reproduction command,
// then a summary line with seeds/s. Exit code 1 when any seed failed.
import { runSeed } from "./cluster";

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v < 0) {
    console.error(`--${name} needs a non-negative integer`);
    process.exit(2);
  }
  return v;
}

const single = process.argv.includes("--seed") && !process.argv.includes("--seeds");
const first = arg("seed", 1);
const count = single ? 1 : arg("seeds", 100);
const steps = arg("steps", 400);
const lostTails = process.argv.includes("--lost-tails");
const pipeline = process.argv.includes("--pipeline");

const started = performance.now();
let failed = 0;
for (let seed = first; seed < first + count; seed++) {
  let r;
  try {
    r = runSeed(seed, steps, lostTails, pipeline);
  } catch (e) {
    r = { seed, ok: false, error: `crash: ${(e as Error).stack ?? String(e)}`, ticks: 0 };
  }
  if (!r.ok) {
    failed++;
    console.log(JSON.stringify({ seed, error: r.error, repro: `bun test/sim/cli.ts --seed ${seed} --steps ${steps}${lostTails ? " --lost-tails" : ""}${pipeline ? " --pipeline" : ""}` }));
  }
}
const seconds = (performance.now() - started) / 1000;
console.log(
  JSON.stringify({ seeds: count, steps, failed, seconds: Number(seconds.toFixed(2)), seedsPerSec: Number((count / seconds).toFixed(1)) }),
);
process.exit(failed > 0 ? 1 : 0);
