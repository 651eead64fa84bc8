// A few hundred seeded simulation runs plus every seed that ever failed. The full sweep is
// `bun test/sim/cli.ts --seeds 10000`.
import { describe, expect, test } from "bun:test";
import { Cluster, runSeed } from "./cluster";
import { REGRESSIONS } from "./regressions";

const SWEEP_SEEDS = 300;
const SWEEP_STEPS = 300;
const CHUNK = 100;
// Generous per-test limit for a loaded shared machine; a quiet one runs a chunk in about a second.
const CHUNK_TIMEOUT_MS = 60_000;

describe("simulation", () => {
  for (let first = 100_000; first < 100_000 + SWEEP_SEEDS; first += CHUNK) {
    test(`seeds ${first}..${first + CHUNK - 1} keep every safety property and recover after healing`, () => {
      const failures: string[] = [];
      for (let seed = first; seed < first + CHUNK; seed++) {
        const r = runSeed(seed, SWEEP_STEPS);
        if (!r.ok) failures.push(`${r.error}\n  repro: bun test/sim/cli.ts --seed ${seed} --steps ${SWEEP_STEPS}`);
      }
      expect(failures).toEqual([]);
    }, CHUNK_TIMEOUT_MS);
  }

  // The same with lost tails (SimOptions.lostTails): one replica at a time loses its newest durable record
  // at every crash and restarts with a vote floor or a lost-vote hard state. Without the floor this range
  // already fails (seed 100051: a leader lacking a committed entry). 10,000 seeds x 400 steps pass (20
  // failed liveness before removed voters could stand as caretakers, see Raft.caretakerTicks); in 3,000 x
  // 1,000 one stalls (seed 20311, below).
  test(`lost tails: seeds ${100_000}..${100_000 + SWEEP_SEEDS - 1} keep every safety property and recover after healing`, () => {
    const failures: string[] = [];
    for (let seed = 100_000; seed < 100_000 + SWEEP_SEEDS; seed++) {
      const r = runSeed(seed, SWEEP_STEPS, true);
      if (!r.ok) failures.push(`${r.error}\n  repro: bun test/sim/cli.ts --seed ${seed} --steps ${SWEEP_STEPS} --lost-tails`);
    }
    expect(failures).toEqual([]);
  }, CHUNK_TIMEOUT_MS);

  // Readies driven as the broker drives them (SimOptions.pipeline): taken while earlier ones are still being
  // persisted, Appends sent and committed entries applied at once, answers only after the fsync. Safety
  // and liveness held in 10,000 seeds x 400 steps and 2,000 x 1,000; sending answers early fails ~40% of
  // the seeds here ("committed with 1 durable copies").
  test(`pipelined readies: seeds ${200_000}..${200_000 + SWEEP_SEEDS - 1} keep every safety property and recover after healing`, () => {
    const failures: string[] = [];
    for (let seed = 200_000; seed < 200_000 + SWEEP_SEEDS; seed++) {
      const r = runSeed(seed, SWEEP_STEPS, false, true);
      if (!r.ok) failures.push(`${r.error}\n  repro: bun test/sim/cli.ts --seed ${seed} --steps ${SWEEP_STEPS} --pipeline`);
    }
    expect(failures).toEqual([]);
  }, CHUNK_TIMEOUT_MS);

  test("seed 20311 (one replica loses two durable entries in two crashes) stalls but keeps every safety property", () => {
    // Its floor covers both lost entries (VoteFloor.lowest); when it covered only the later one, a voter
    // holding the earlier, committed entry counted as evidence and a leader without it was elected
    // ("leader completeness"). Losing an older synced record is beyond a torn tail, so stalling is the
    // expected outcome here, not a lost entry.
    const r = runSeed(20311, 1000, true);
    expect(r.error ?? "").not.toMatch(/completeness|safety|committed term|both lead|durable copies|diverging/);
  });

  for (const r of REGRESSIONS) {
    test(`regression seed ${r.seed}: ${r.caught}`, () => {
      const result = runSeed(r.seed, r.steps, r.lostTails, r.pipeline);
      expect(result.error).toBeUndefined();
      expect(result.ok).toBe(true);
    });
  }

  test("the same seed replays the same run", () => {
    const a = new Cluster({ seed: 7, steps: 200 });
    const b = new Cluster({ seed: 7, steps: 200 });
    a.run();
    b.run();
    expect(a.now).toBe(b.now);
    expect(a.log).toEqual(b.log);
    const commits = (c: Cluster) => [...c.nodes.values()].map((n) => n.raft?.commitIndex);
    expect(commits(a)).toEqual(commits(b));
  });

  test("the checks catch a broken core: granting votes to out-of-date candidates loses committed entries", async () => {
    // Drop the election restriction of §5.4.1 and expect the leader-completeness check to fire.
    const { RaftLog } = await import("../../src/raft/log");
    const original = RaftLog.prototype.isUpToDate;
    RaftLog.prototype.isUpToDate = () => true;
    try {
      let failure: string | undefined;
      for (let seed = 1; seed <= 100 && failure === undefined; seed++) failure = runSeed(seed, 400).error;
      expect(failure).toContain("leader completeness");
    } finally {
      RaftLog.prototype.isUpToDate = original;
    }
  }, CHUNK_TIMEOUT_MS);
});
