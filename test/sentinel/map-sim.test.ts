// The Raft simulation extended to the sentinel's state: three sentinels replicate the cluster map through
// the Raft core under drops, duplicates, reordering, isolation, crash/restart and snapshot installs.
import { describe, expect, test } from "bun:test";
import { MapSim, MapSimFailure } from "./map-sim";

const SEEDS = 300;
const STEPS = 300;
const CHUNK = 100;
// Generous for a loaded two-core machine; a quiet one runs a chunk in a few seconds.
const CHUNK_TIMEOUT_MS = 60_000;

function runSeed(seed: number): string | undefined {
  try {
    new MapSim(seed).run(STEPS);
    return undefined;
  } catch (e) {
    if (e instanceof MapSimFailure) return e.message;
    throw e;
  }
}

describe("cluster map over Raft (simulation)", () => {
  for (let first = 1; first <= SEEDS; first += CHUNK) {
    test(`seeds ${first}..${first + CHUNK - 1}: equal maps at equal applied indexes, no group reuse, convergence`, () => {
      const failures: string[] = [];
      for (let seed = first; seed < first + CHUNK; seed++) {
        const error = runSeed(seed);
        if (error !== undefined) failures.push(error);
      }
      expect(failures).toEqual([]);
    }, CHUNK_TIMEOUT_MS);
  }

  test("the runs exercise the map: topics, groups, faults and snapshot installs happen", () => {
    let topics = 0;
    let groups = 0;
    let installs = 0;
    let crashes = 0;
    for (let seed = 1; seed <= 30; seed++) {
      const sim = new MapSim(seed);
      const final = sim.run(STEPS);
      topics += final.topics.length;
      groups += final.nextGroup - 1;
      installs += sim.installs;
      crashes += sim.log.filter((l) => l.includes("crash")).length;
    }
    expect(topics).toBeGreaterThan(30);
    expect(groups).toBeGreaterThan(100);
    expect(installs).toBeGreaterThan(0);
    expect(crashes).toBeGreaterThan(5);
  }, CHUNK_TIMEOUT_MS);

  test("the same seed replays the same run and the same map", () => {
    const a = new MapSim(42);
    const b = new MapSim(42);
    expect(a.run(STEPS)).toEqual(b.run(STEPS));
    expect(a.log).toEqual(b.log);
    expect(a.now).toBe(b.now);
  });

  test("the checks catch a diverging state machine: one node skipping a command", async () => {
    const { ClusterMap } = await import("../../src/sentinel/cluster-map");
    const original = ClusterMap.prototype.apply;
    let calls = 0;
    // Every 50th apply anywhere is dropped: some node's map then differs from the others at that index.
    ClusterMap.prototype.apply = function (this: InstanceType<typeof ClusterMap>, c) {
      if (++calls % 50 === 0) return { ok: true, epoch: this.version };
      return original.call(this, c);
    };
    try {
      let failure: string | undefined;
      for (let seed = 1; seed <= 20 && failure === undefined; seed++) failure = runSeed(seed);
      expect(failure).toContain("different map");
    } finally {
      ClusterMap.prototype.apply = original;
    }
  }, CHUNK_TIMEOUT_MS);
});
