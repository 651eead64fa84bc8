// The small pure modules on their own.
import { describe, expect, test } from "bun:test";
import { RaftInvariantError } from "../../src/raft/assert";
import { applyConfChange, decodeConfChange, encodeConfChange } from "../../src/raft/confchange";
import { Inflights } from "../../src/raft/inflights";
import { RaftLog } from "../../src/raft/log";
import { Prng } from "../../src/raft/prng";
import { Progress, ProgressState } from "../../src/raft/progress";
import { committedIndex, voteOutcome } from "../../src/raft/quorum";
import { entriesWithTerms } from "./harness";

const snap0 = { index: 0, term: 0, conf: { voters: [], learners: [] }, data: new Uint8Array() };

describe("quorum", () => {
  test("commit index is the highest index held by a majority", () => {
    const match = new Map([[1, 9], [2, 5], [3, 7], [4, 2], [5, 7]]);
    expect(committedIndex([1, 2, 3, 4, 5], (id) => match.get(id)!)).toBe(7);
    expect(committedIndex([1, 2, 4], (id) => match.get(id)!)).toBe(5);
    expect(committedIndex([], () => 3)).toBe(0);
  });

  test("votes: won, lost, pending", () => {
    expect(voteOutcome([1, 2, 3], new Map([[1, true], [2, true]]))).toBe("won");
    expect(voteOutcome([1, 2, 3], new Map([[1, true], [2, false]]))).toBe("pending");
    expect(voteOutcome([1, 2, 3], new Map([[2, false], [3, false]]))).toBe("lost");
    expect(voteOutcome([1, 2, 3, 4], new Map([[1, true], [2, true]]))).toBe("pending");
  });
});

describe("inflights and progress", () => {
  test("the window fills, and acknowledgements free it in order", () => {
    const f = new Inflights(3);
    f.add(2);
    f.add(5);
    f.add(9);
    expect(f.full()).toBe(true);
    expect(() => f.add(10)).toThrow(RaftInvariantError);
    f.freeLE(5);
    expect(f.count).toBe(1);
    f.add(12);
    f.freeLE(100);
    expect(f.count).toBe(0);
  });

  test("a stale rejection does not move next back", () => {
    const p = new Progress(10, 4, false);
    p.maybeUpdate(6);
    p.becomeReplicate();
    expect(p.next).toBe(7);
    expect(p.maybeDecrTo(5, 3)).toBe(false); // already matched past 5
    expect(p.maybeDecrTo(8, 3)).toBe(true);
    expect(p.next).toBe(7);
    p.becomeSnapshot(20);
    expect(p.isPaused()).toBe(true);
    p.becomeProbe();
    expect(p.state).toBe(ProgressState.Probe);
    expect(p.next).toBe(21);
  });
});

describe("conf changes", () => {
  test("encode/decode round trip, and malformed input is rejected", () => {
    for (const cc of [
      { type: "add-learner", node: 7 },
      { type: "promote", node: 70000 },
      { type: "remove", node: 1 },
    ] as const) {
      expect(decodeConfChange(encodeConfChange(cc))).toEqual(cc);
    }
    expect(() => decodeConfChange(new Uint8Array([9, 0, 0, 0, 1]))).toThrow();
    expect(() => decodeConfChange(new Uint8Array([1, 0]))).toThrow();
  });

  test("applying is deterministic and a change that no longer fits is a no-op", () => {
    let conf = { voters: [1, 2, 3], learners: [] as number[] };
    conf = applyConfChange(conf, { type: "add-learner", node: 4 });
    conf = applyConfChange(conf, { type: "promote", node: 4 });
    expect(conf).toEqual({ voters: [1, 2, 3, 4], learners: [] });
    expect(applyConfChange(conf, { type: "promote", node: 9 })).toEqual(conf);
    expect(applyConfChange({ voters: [1], learners: [] }, { type: "remove", node: 1 })).toEqual({ voters: [1], learners: [] });
  });
});

describe("log", () => {
  test("a conflicting append truncates the uncommitted suffix but never the committed prefix", () => {
    const log = new RaftLog(snap0, entriesWithTerms([1, 1, 2, 2]), 2, 0, 4);
    expect(log.tryAppend(2, 1, entriesWithTerms([1, 1, 3]).slice(2))).toBe(3);
    expect(log.lastIndex).toBe(3);
    expect(log.term(3)).toBe(3);
    expect(log.persisted).toBe(2); // the replaced entry must be persisted again
    expect(() => log.append(entriesWithTerms([1, 5]).slice(1))).toThrow(RaftInvariantError);
    expect(log.tryAppend(3, 9, [])).toBe(-1);
  });

  test("a stale append of entries already present does not truncate", () => {
    const log = new RaftLog(snap0, entriesWithTerms([1, 1, 1, 1]), 0, 0, 4);
    expect(log.tryAppend(0, 0, entriesWithTerms([1, 1]))).toBe(2);
    expect(log.lastIndex).toBe(4);
  });

  test("commit never goes back and never passes the end", () => {
    const log = new RaftLog(snap0, entriesWithTerms([1, 1]), 0, 0, 2);
    log.commitTo(2);
    log.commitTo(1);
    expect(log.committed).toBe(2);
    expect(() => log.commitTo(3)).toThrow(RaftInvariantError);
  });

  test("findConflictByTerm skips a whole term at once", () => {
    const log = new RaftLog(snap0, entriesWithTerms([1, 2, 2, 2, 4, 4, 4]), 0, 0, 7);
    expect(log.findConflictByTerm(7, 3)).toEqual([4, 2]);
    expect(log.findConflictByTerm(7, 1)).toEqual([1, 1]);
  });
});

describe("prng", () => {
  test("the same seed gives the same sequence; different seeds differ", () => {
    const a = new Prng(5);
    const b = new Prng(5);
    const c = new Prng(6);
    const sa = Array.from({ length: 5 }, () => a.nextU32());
    expect(Array.from({ length: 5 }, () => b.nextU32())).toEqual(sa);
    expect(Array.from({ length: 5 }, () => c.nextU32())).not.toEqual(sa);
    for (let i = 0; i < 1000; i++) {
      const x = a.int(7);
      expect(x >= 0 && x < 7).toBe(true);
    }
  });
});
