// The short form of the fault suite: real processes, a few dozen seconds of faults of every kind under an
// idempotent produce load, then the full check. A failure prints the seed and the nemesis history.
import { afterAll, expect, test } from "bun:test";
import { stopAllClusters } from "./harness";
import { failureText, runFaults, type RunReport } from "./run";

const SEED = Number(process.env.FAULTS_SEED ?? 1);

afterAll(stopAllClusters);

function expectOk(r: RunReport, lines: string[]): void {
  if (!r.ok) console.error([...lines, failureText(r)].join("\n"));
  expect(r.problems).toEqual([]);
}

test(
  `a minority of faults of every kind loses, duplicates or reorders no acknowledged message (seed ${SEED})`,
  async () => {
    const lines: string[] = [];
    const r = await runFaults({
      seed: SEED,
      log: (l) => lines.push(l),
      durationMs: 30_000,
      minFaults: 8,
      minAcks: 300,
    });
    console.error(JSON.stringify({ seed: r.seed, acks: r.acks, faults: r.faults, kinds: r.faultKinds, records: r.records, convergedInMs: r.convergedInMs }));
    expectOk(r, lines);
    expect(r.faultKinds.length).toBeGreaterThanOrEqual(5);
  },
  { timeout: 120_000 },
);
