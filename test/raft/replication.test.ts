// Raft §5.3 log replication and §5.4 safety, including Figures 7 and 8 of the paper.
import { describe, expect, test } from "bun:test";
import { RaftNode } from "../../src/raft/node";
import { EntryType, MessageType, Role } from "../../src/raft/types";
import { Net, config, restartWithLog } from "./harness";

const data = (s: string) => new TextEncoder().encode(s);
const text = (d: Uint8Array) => new TextDecoder().decode(d);

describe("log replication", () => {
  test("proposals are replicated, committed and applied in order on every node", () => {
    const net = Net.of([1, 2, 3]);
    net.elect(1);
    const first = net.node(1).proposeBatch([data("a"), data("b")]);
    net.node(1).propose(data("c"));
    net.drain(1);
    net.deliverAll();
    net.tickAll(1); // heartbeats carry the final commit index
    for (const id of [1, 2, 3]) {
      const applied = net.stored.get(id)!.applied.filter((e) => e.type === EntryType.Normal);
      expect(applied.map((e) => text(e.data))).toEqual(["a", "b", "c"]);
      expect(applied[0]!.index).toBe(first - 1);
      expect(net.node(id).appliedIndex).toBe(net.node(1).lastIndex);
    }
  });

  test("a follower refuses proposals and names the leader", () => {
    const net = Net.of([1, 2, 3]);
    net.elect(1);
    expect(() => net.node(2).propose(data("x"))).toThrow(expect.objectContaining({ reason: "not-leader", leader: 1 }));
  });

  test("appends are pipelined within the inflight window and the byte limit", () => {
    const net = Net.of([1, 2, 3], { maxInflightMsgs: 2, maxMsgBytes: 8 });
    net.elect(1);
    net.tickAll(1);
    for (let i = 0; i < 10; i++) net.node(1).propose(new Uint8Array(8));
    net.drain(1);
    const toTwo = net.queue.filter((m) => m.type === MessageType.Append && m.to === 2);
    expect(toTwo).toHaveLength(2); // window of two, one 8-byte entry each
    for (const m of toTwo) expect(m.entries).toHaveLength(1);
    net.deliverAll();
    expect(net.node(2).lastIndex).toBe(net.node(1).lastIndex);
  });

  test("a message that needs durability ships in the ready that persists what it promises", () => {
    const net = Net.of([1, 2, 3]);
    net.elect(1);
    net.node(1).propose(data("durable"));
    net.drain(1);
    net.deliverAll();
    for (const id of [2, 3]) {
      for (const rd of net.stored.get(id)!.readies) {
        for (const m of rd.messages) {
          if (m.type === MessageType.VoteResponse && !m.reject) expect(rd.hardState?.vote).toBe(m.to);
          if (m.type === MessageType.AppendResponse && !m.reject && rd.entries.length > 0) {
            expect(rd.entries[rd.entries.length - 1]!.index).toBeGreaterThanOrEqual(m.index);
          }
        }
      }
    }
  });
});

describe("Figure 7: a new leader brings any follower log in line with its own", () => {
  // Indexes 1..10 of the leader's log carry these terms; the leader is elected for term 8.
  const leaderLog = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
  const followers: Record<string, number[]> = {
    a: [1, 1, 1, 4, 4, 5, 5, 6, 6],
    b: [1, 1, 1, 4],
    c: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
    d: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
    e: [1, 1, 1, 4, 4, 4, 4],
    f: [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
  };
  for (const [name, log] of Object.entries(followers)) {
    test(`follower (${name})`, () => {
      const net = new Net();
      net.add(new RaftNode(config(1, [], {}), restartWithLog(leaderLog, 7, [1, 2, 3])));
      net.add(new RaftNode(config(2, [], {}), restartWithLog(log, 7, [1, 2, 3])));
      net.add(new RaftNode(config(3, [], {}), restartWithLog([1], 7, [1, 2, 3]))); // votes for 1
      net.elect(1);
      expect(net.node(1).role).toBe(Role.Leader);
      expect(net.node(1).term).toBe(8);
      net.tickAll(3);
      expect(net.terms(2)).toEqual([...leaderLog, 8]);
      expect(net.node(2).commitIndex).toBe(11);
    });
  }
});

describe("Figure 8: a leader commits entries of earlier terms only through one of its own", () => {
  test("an old-term entry on a majority is not committed until a current-term entry is", () => {
    const voters = [1, 2, 3, 4, 5];
    const net = new Net();
    // S1 led term 2 and replicated index 2 only to S2; it restarts and wins term 4.
    net.add(new RaftNode(config(1, [], { maxMsgBytes: 0, maxInflightMsgs: 1 }), restartWithLog([1, 2], 3, voters, 1)));
    net.add(new RaftNode(config(2, [], {}), restartWithLog([1, 2], 3, voters, 1)));
    for (const id of [3, 4, 5]) net.add(new RaftNode(config(id, [], {}), restartWithLog([1], 3, voters, 1)));
    // Once S3..S5 hold index 2 (term 2), hold back the term-4 noop from them: S1 and S2 have it, and
    // a majority (S1, S2, S3...) has index 2.
    net.filter = (m) =>
      !(m.type === MessageType.Append && m.to >= 3 && net.node(m.to).termAt(2) === 2 && m.entries.some((e) => e.term === 4));
    net.elect(1);
    expect(net.node(1).role).toBe(Role.Leader);
    expect(net.node(1).term).toBe(4);
    expect(net.node(3).termAt(2)).toBe(2);
    expect(net.node(1).commitIndex).toBe(1); // a majority holds it, yet it is not committed
    net.heal();
    net.tickAll(3);
    expect(net.node(1).commitIndex).toBe(3); // the term-4 noop commits index 2 with it
    for (const id of voters) expect(net.terms(id)).toEqual([1, 2, 4]);
  });
});

describe("fast backtracking", () => {
  test("a follower back with fewer entries than it acknowledged is caught up by heartbeats alone", () => {
    // Its disk lost acknowledged entries, or the replica let them go when its partition log failed.
    // The leader believes it holds everything, and an idle group sends it no append to reject.
    const net = Net.of([1, 2, 3]);
    net.elect(1);
    for (const v of ["a", "b", "c"]) net.node(1).propose(data(v));
    net.drain(1);
    net.deliverAll();
    const last = net.node(1).lastIndex;
    expect(net.node(3).lastIndex).toBe(last);
    const term = net.node(1).term;
    net.add(new RaftNode(config(3, []), restartWithLog(net.terms(1).slice(0, 1), term, [1, 2, 3], 1)));
    expect(net.node(3).lastIndex).toBe(1);
    net.tickAll(3); // heartbeats only: nothing is proposed
    expect(net.node(3).lastIndex).toBe(last);
    expect(net.terms(3)).toEqual(net.terms(1));
    expect(net.node(3).commitIndex).toBe(net.node(1).commitIndex);
    const told = net.delivered.filter((m) => m.from === 3 && m.type === MessageType.AppendResponse && m.reject);
    expect(told.map((m) => [m.index, m.rejectHint])).toEqual([[last, 1]]);
  });

  test("a long divergent log is repaired in a few round trips, one per conflicting term", () => {
    const leaderLog = [1, ...Array<number>(40).fill(3), ...Array<number>(40).fill(5)];
    const followerLog = [1, ...Array<number>(40).fill(2), ...Array<number>(60).fill(4)];
    const net = new Net();
    net.add(new RaftNode(config(1, []), restartWithLog(leaderLog, 5, [1, 2, 3], 1)));
    net.add(new RaftNode(config(2, []), restartWithLog(followerLog, 5, [1, 2, 3], 1)));
    net.add(new RaftNode(config(3, []), restartWithLog([1], 5, [1, 2, 3], 1)));
    net.elect(1);
    net.tickAll(3);
    expect(net.terms(2)).toEqual([...leaderLog, 6]);
    const rejections = net.delivered.filter((m) => m.type === MessageType.AppendResponse && m.reject && m.from === 2);
    expect(rejections.length).toBeLessThanOrEqual(3);
  });
});
