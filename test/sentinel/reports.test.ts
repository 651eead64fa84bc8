// The sentinel's table of what brokers reported: full reports, KeepAlive deltas built on them, and RPC
// answers, which update a status but are no report a delta could build on.
import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { PartitionStatusSchema, Role } from "../../src/proto/goulette_pb";
import { ReportTable } from "../../src/sentinel/reports";

const status = (partition: number, term: number, role = Role.FOLLOWER) =>
  create(PartitionStatusSchema, { topic: "t", partition, group: BigInt(partition + 1), term: BigInt(term), role });

describe("report table", () => {
  test("a delta replaces what it carries and keeps the rest; it needs a full report to build on", () => {
    const t = new ReportTable();
    t.updateOne(1, status(0, 1), 0); // an RPC answer (SetTopicRole) before the broker's first KeepAlive
    expect(t.hasReported(1)).toBe(false);
    expect(() => t.merge(1, [status(1, 1)], 0)).toThrow(/no full report/);

    t.replaceAll(1, [status(0, 1), status(1, 1), status(2, 1)], 10);
    expect(t.hasReported(1)).toBe(true);
    t.merge(1, [status(1, 2, Role.LEADER)], 20);
    expect(t.statusesOf(1).map((r) => [r.status.partition, Number(r.status.term), r.atMs])).toEqual([
      [0, 1, 10],
      [1, 2, 20],
      [2, 1, 10],
    ]);
    expect(t.leaderCount(1)).toBe(1);

    // Registered again: the table is dropped, and an RPC answer does not make it a base again.
    t.dropBroker(1);
    t.updateOne(1, status(0, 3), 30);
    expect(t.hasReported(1)).toBe(false);
    expect(() => t.merge(1, [status(0, 4)], 40)).toThrow(/no full report/);
  });
});
