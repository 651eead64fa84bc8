import { describe, expect, test } from "bun:test";
import { GroupCoordinator, type JoinResult } from "../../src/sentinel/groups";

const counts: Record<string, number> = { a: 5, b: 2 };
const coordinator = () => new GroupCoordinator((t) => counts[t]);

function value(r: { ok: true; value: JoinResult } | { ok: false; code: string }): JoinResult {
  if (!r.ok) throw new Error(`join failed: ${r.code}`);
  return r.value;
}

describe("GroupCoordinator", () => {
  test("members share partitions by range; every partition is owned exactly once", () => {
    const g = coordinator();
    const m1 = value(g.join("g", "", ["a", "b"], 1000, 0));
    expect(m1.assignment).toEqual([{ topic: "a", partitions: [0, 1, 2, 3, 4] }, { topic: "b", partitions: [0, 1] }]);
    const m2 = value(g.join("g", "", ["a", "b"], 1000, 10));
    expect(m2.generation).toBe(m1.generation + 1);
    expect(m2.assignment).toEqual([{ topic: "a", partitions: [3, 4] }, { topic: "b", partitions: [1] }]);
    // m1 learns of the rebalance on its next heartbeat, re-joins and gets the other half
    expect(g.heartbeat("g", m1.memberId, m1.generation, 20)).toMatchObject({ ok: false, code: "REBALANCE_IN_PROGRESS" });
    const again = value(g.join("g", m1.memberId, ["a", "b"], 1000, 20));
    expect(again.generation).toBe(m2.generation); // re-joining with the same subscription starts no new round
    expect(again.assignment).toEqual([{ topic: "a", partitions: [0, 1, 2] }, { topic: "b", partitions: [0] }]);
    expect(g.heartbeat("g", m1.memberId, again.generation, 30)).toEqual({ ok: true, value: undefined });
  });

  test("a member silent past its session timeout is removed and the rest rebalance", () => {
    const g = coordinator();
    const m1 = value(g.join("g", "", ["a"], 300, 0));
    const m2 = value(g.join("g", "", ["a"], 300, 0));
    const m1b = value(g.join("g", m1.memberId, ["a"], 300, 0));
    expect(g.heartbeat("g", m1.memberId, m1b.generation, 250).ok).toBe(true);
    expect(g.expire(301)).toEqual([`g/${m2.memberId}`]);
    expect(g.heartbeat("g", m1.memberId, m1b.generation, 310)).toMatchObject({ code: "REBALANCE_IN_PROGRESS" });
    const alone = value(g.join("g", m1.memberId, ["a"], 300, 320));
    expect(alone.assignment).toEqual([{ topic: "a", partitions: [0, 1, 2, 3, 4] }]);
    expect(g.heartbeat("g", m2.memberId, m2.generation, 330)).toMatchObject({ code: "UNKNOWN_MEMBER" });
  });

  test("leave rebalances; the last one out removes the group; bad input is refused", () => {
    const g = coordinator();
    const m1 = value(g.join("g", "", ["a"], 1000, 0));
    const m2 = value(g.join("g", "", ["a"], 1000, 0));
    expect(g.leave("g", m2.memberId).ok).toBe(true);
    expect(g.describe("g")!.members[m1.memberId]).toEqual([{ topic: "a", partitions: [0, 1, 2, 3, 4] }]);
    expect(g.leave("g", m1.memberId).ok).toBe(true);
    expect(g.heartbeat("g", m1.memberId, 1, 0)).toMatchObject({ code: "UNKNOWN_GROUP" });
    expect(g.join("g", "", [], 1000, 0)).toMatchObject({ ok: false, code: "INVALID_ARGUMENT" });
    expect(g.join("g", "", ["a"], 5, 0)).toMatchObject({ ok: false, code: "INVALID_ARGUMENT" });
  });
});
