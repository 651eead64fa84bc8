// The short form of the fault suite: real processes, a few dozen seconds of faults of every kind under an
// idempotent produce load, then the full check; once with one sentinel, once with three replicating the
// map (sentinel-kill then takes down one of them). A failure prints the seed and the nemesis history.
import { afterAll, expect, test } from "bun:test";
import { stopAllClusters } from "./harness";
import { failureText, runFaults, type RunReport } from "./run";

const SEED = Number(process.env.FAULTS_SEED ?? 1);

afterAll(stopAllClusters);

function expectOk(r: RunReport, lines: string[]): void {
  if (!r.ok) console.error([...lines, failureText(r)].join("\n"));
  expect(r.problems).toEqual([]);
}

async function shortRun(sentinels: 1 | 3): Promise<void> {
  const lines: string[] = [];
  const r = await runFaults({
    seed: SEED,
    sentinels,
    log: (l) => lines.push(l),
    durationMs: 30_000,
    minFaults: 8,
    minAcks: 300,
  });
  console.error(
    JSON.stringify({
      seed: r.seed,
      sentinels: r.sentinels,
      acks: r.acks,
      faults: r.faults,
      kinds: r.faultKinds,
      sentinelKills: r.sentinelKills,
      records: r.records,
      convergedInMs: r.convergedInMs,
    }),
  );
  expectOk(r, lines);
  expect(r.faultKinds.length).toBeGreaterThanOrEqual(5);
}

test(
  `a minority of faults of every kind loses, duplicates or reorders no acknowledged message (seed ${SEED})`,
  () => shortRun(1),
  { timeout: 120_000 },
);

test(
  `the same with three sentinels, one of them killed at a time (seed ${SEED})`,
  () => shortRun(3),
  { timeout: 120_000 },
);
