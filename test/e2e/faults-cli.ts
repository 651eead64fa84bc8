// The long form of the fault suite: `bun test/e2e/faults-cli.ts --duration 300 [--seed S] [--partitions N]
// [--sentinels 1|3] [--brokers N]` (N >= 3; more than three lets the sentinel move replicas during the run).
// Prints progress, then one JSON line with the figures; exits 1 (with seed and nemesis history) on failure.
import { parseArgs } from "node:util";
import { defaultKinds, type FaultKind } from "./nemesis";
import { failureText, runFaults } from "./run";

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    duration: { type: "string", default: "300" },
    seed: { type: "string" },
    partitions: { type: "string", default: "4" },
    sentinels: { type: "string", default: "1" },
    brokers: { type: "string", default: "3" },
    rate: { type: "string" },
    keep: { type: "boolean", default: false },
    "progress-ms": { type: "string", default: "10000" },
    kinds: { type: "string" }, // comma-separated subset of the fault kinds
    "hold-ms": { type: "string" }, // min,max duration of each fault
  },
  strict: true,
});

function int(name: string, text: string | undefined, min: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) {
    console.error(`--${name} must be an integer >= ${min}, got ${text}`);
    process.exit(2);
  }
  return n;
}

/** A subset of the kinds this many brokers allow (an outage needs a broker free to take the replicas). */
function kinds(text: string, brokers: number): FaultKind[] {
  const list = text.split(",").map((k) => k.trim());
  const known = defaultKinds(brokers, 3);
  for (const k of list) {
    if (!(known as readonly string[]).includes(k)) {
      console.error(`--kinds: unknown fault "${k}" with ${brokers} brokers; known: ${known.join(", ")}`);
      process.exit(2);
    }
  }
  return list as FaultKind[];
}

function sentinelCount(text: string | undefined): 1 | 3 {
  if (text === "1" || text === "3") return Number(text) as 1 | 3;
  console.error(`--sentinels must be 1 or 3, got ${text}`);
  process.exit(2);
}

const durationSec = int("duration", values.duration, 5);
const sentinels = sentinelCount(values.sentinels);
const brokers = int("brokers", values.brokers, 3);
const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : int("seed", values.seed, 0);
console.error(`fault run: seed=${seed} duration=${durationSec}s sentinels=${sentinels} brokers=${values.brokers}`);
const r = await runFaults({
  seed,
  durationMs: durationSec * 1000,
  partitions: int("partitions", values.partitions, 1),
  sentinels,
  brokers,
  maxRatePerSec: values.rate === undefined ? undefined : int("rate", values.rate, 1),
  keep: values.keep,
  progressEveryMs: int("progress-ms", values["progress-ms"], 100),
  kinds: values.kinds === undefined ? undefined : kinds(values.kinds, brokers),
  faultMsMin: values["hold-ms"] === undefined ? undefined : int("hold-ms", values["hold-ms"].split(",")[0], 1),
  faultMsMax: values["hold-ms"] === undefined ? undefined : int("hold-ms", values["hold-ms"].split(",").at(-1), 1),
  log: (line) => console.error(line),
});
const { history, problems, ...figures } = r;
console.log(JSON.stringify({ ...figures, problems: problems.length }));
if (!r.ok) {
  console.error(failureText(r));
  process.exit(1);
}
console.error(`nemesis history:\n${history}`);
