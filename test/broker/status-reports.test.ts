// What a beat reports of a broker's partitions: shape changes at once, counters at most once per period
// (every beat for a group with learners), a full report when the partition set changed.
import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { PartitionStatusSchema } from "../../src/proto/goulette_pb";
import type { Partition } from "../../src/broker/partition";
import { StatusReports } from "../../src/broker/status-reports";
import { Role } from "../../src/raft/types";

/** The fields a status is made of, on a plain object shaped like a Partition. */
function fakePartition(partition: number) {
  const f = {
    id: { topic: "t", partition, group: partition + 1 },
    removed: false,
    left: false,
    failed: undefined as Error | undefined,
    configHash: 0,
    appliedIndex: 0,
    log: { nextOffset: 0, logStartOffset: 0 },
    node: {
      role: Role.Leader,
      term: 1,
      leader: 1,
      commitIndex: 0,
      conf: { voters: [1, 2, 3], learners: [] as number[] },
      match: new Map<number, number>([[2, 0]]),
      forEachMatch(fn: (id: number, match: number) => void) {
        for (const [id, m] of this.match) fn(id, m);
      },
    },
  };
  return f;
}
type Fake = ReturnType<typeof fakePartition>;

function setup(n: number) {
  const parts = Array.from({ length: n }, (_, i) => fakePartition(i));
  const awake = new Set<Fake>();
  const reports = new StatusReports({
    all: () => parts as unknown as Partition[],
    awake: () => awake as unknown as Set<Partition>,
    status: (p) => create(PartitionStatusSchema, { topic: p.id.topic, partition: p.id.partition }),
    countersEveryMs: 1_000,
  });
  for (const p of parts) reports.added(p as unknown as Partition);
  /** One beat at `ms`, taken unless told otherwise: which partitions it carried. */
  const beat = (ms: number, o: { full?: boolean; deltas?: boolean; take?: boolean } = {}) => {
    const r = reports.report({ full: o.full ?? false, deltas: o.deltas ?? true, nowMs: ms });
    if (o.take ?? true) r.taken();
    return { full: r.full, partitions: r.partitions.map((s) => s.partition) };
  };
  const touch = (p: Fake) => reports.touch(p as unknown as Partition);
  return { parts, awake, reports, beat, touch };
}

describe("status reports", () => {
  test("counters wait until due, a shape change does not; partitions nothing touched are not even looked at", () => {
    const { parts, beat, touch } = setup(4);
    expect(beat(0)).toEqual({ full: true, partitions: [0, 1, 2, 3] });
    expect(beat(100)).toEqual({ full: false, partitions: [] });

    parts[0]!.log.nextOffset = 5;
    parts[0]!.node.commitIndex = 2;
    touch(parts[0]!);
    parts[1]!.node.term = 2; // a new term: shape
    parts[1]!.node.role = Role.Follower;
    touch(parts[1]!);
    expect(beat(200)).toEqual({ full: false, partitions: [1] });
    expect(beat(300)).toEqual({ full: false, partitions: [] }); // partition 0 still waits, untouched since
    expect(beat(1_000)).toEqual({ full: false, partitions: [0] }); // due: a second after the full report
    expect(beat(1_100)).toEqual({ full: false, partitions: [] });

    // A change no one touched (nor awake) is not seen by a delta; the periodic full report carries it.
    parts[2]!.node.term = 3;
    expect(beat(1_200)).toEqual({ full: false, partitions: [] });
    expect(beat(1_300, { full: true })).toEqual({ full: true, partitions: [0, 1, 2, 3] });
  });

  test("awake groups are looked at every beat; a group with learners reports its counters every beat", () => {
    const { parts, awake, beat } = setup(3);
    beat(0);
    awake.add(parts[0]!);
    awake.add(parts[2]!);
    parts[2]!.node.conf.learners = [4];
    expect(beat(100)).toEqual({ full: false, partitions: [2] }); // a learner joined: shape
    for (let ms = 200; ms < 1_000; ms += 100) {
      parts[0]!.node.match.set(2, ms);
      parts[2]!.node.match.set(4, ms); // the learner catches up
      expect(beat(ms)).toEqual({ full: false, partitions: [2] });
    }
    expect(beat(1_000)).toEqual({ full: false, partitions: [0] });
  });

  test("a partition added or removed brings a full report; a report not taken is built on by nothing", () => {
    const { parts, reports, beat, touch } = setup(3);
    beat(0);
    reports.removed(parts[1]! as unknown as Partition);
    parts[1]!.removed = true;
    parts.splice(1, 1);
    expect(beat(100)).toEqual({ full: true, partitions: [0, 2] });
    expect(beat(200)).toEqual({ full: false, partitions: [] });

    // A delta the sentinel did not take leaves its base where it was: a later full report (the session
    // asks for one after any beat not taken) carries it again.
    parts[0]!.node.term = 9;
    touch(parts[0]!);
    expect(beat(300, { take: false })).toEqual({ full: false, partitions: [0] });
    expect(beat(400, { full: true })).toEqual({ full: true, partitions: [0, 2] });

    // A removal while a full report is on its way: the next report is full again, not a delta on a base
    // that still lists the removed partition.
    const inFlight = reports.report({ full: true, deltas: true, nowMs: 500 });
    reports.removed(parts[0]! as unknown as Partition);
    parts[0]!.removed = true;
    parts.splice(0, 1);
    inFlight.taken();
    expect(beat(600)).toEqual({ full: true, partitions: [2] });
  });

  test("a sentinel that takes no deltas gets a full report when anything is due, else nothing", () => {
    const { parts, beat, touch } = setup(2);
    beat(0, { deltas: false });
    expect(beat(100, { deltas: false })).toEqual({ full: false, partitions: [] });
    parts[1]!.node.leader = 2;
    touch(parts[1]!);
    expect(beat(200, { deltas: false })).toEqual({ full: true, partitions: [0, 1] });
  });
});
