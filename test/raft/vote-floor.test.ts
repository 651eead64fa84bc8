// A node whose storage lost the newest entry it had written (a torn or cut WAL tail) restarts with a vote
// floor: it may have acknowledged that entry, so it must not help a log without it win an election.
import { describe, expect, test } from "bun:test";
import { RaftNode } from "../../src/raft/node";
import { MessageType, Role, type NodeId, type RestartState } from "../../src/raft/types";
import { Net, config, restartWithLog } from "./harness";

const VOTERS: NodeId[] = [1, 2, 3];

function withFloor(r: RestartState, term: number, index: number): RestartState {
  return { ...r, voteFloor: { term, index } };
}

function leaders(net: Net, ids: NodeId[]): NodeId[] {
  return ids.filter((id) => net.node(id).role === Role.Leader);
}

describe("vote floor", () => {
  test("an entry committed by the leader and a follower that then lost it survives a lagging third voter", () => {
    // Term 2: leader 1 committed index 5 with follower 2 while 3 lagged at 4. 2's disk lost index 5 after
    // acknowledging it; then 1 went away. Without the floor, 2 and 3 elect a leader whose log ends at 4
    // and its first entry replaces the committed one.
    const net = new Net();
    net.add(new RaftNode(config(1, []), restartWithLog([1, 1, 2, 2, 2], 2, VOTERS, 5)));
    net.add(new RaftNode(config(2, []), withFloor(restartWithLog([1, 1, 2, 2], 2, VOTERS, 4), 2, 5)));
    net.add(new RaftNode(config(3, []), restartWithLog([1, 1, 2, 2], 2, VOTERS, 4)));
    net.isolate(1);
    net.tickAll(100);
    expect(leaders(net, [2, 3])).toEqual([]);
    expect(net.node(2).voteFloor).toEqual({ term: 2, index: 5 });
    // 3's pre-votes were refused, never granted and turned into a real election by 2.
    expect(net.node(2).term).toBe(2);

    net.heal();
    net.tickAll(100);
    const [leader] = leaders(net, VOTERS);
    expect(leader).toBe(1);
    for (const id of VOTERS) {
      expect(net.node(id).entryAt(5)?.term).toBe(2);
      expect(net.node(id).commitIndex).toBeGreaterThanOrEqual(6);
    }
    // The commit reached the entry: settled.
    expect(net.node(2).voteFloor).toBeUndefined();
  });

  test("a node behind its floor grants votes to logs that reach it", () => {
    const net = new Net();
    net.add(new RaftNode(config(1, []), restartWithLog([1, 1, 2, 2, 2], 2, VOTERS, 4)));
    net.add(new RaftNode(config(2, []), withFloor(restartWithLog([1, 1, 2, 2], 2, VOTERS, 4), 2, 5)));
    net.add(new RaftNode(config(3, []), restartWithLog([1, 1, 2, 2], 2, VOTERS, 4)));
    net.isolate(3);
    net.tickAll(100);
    expect(leaders(net, VOTERS)).toEqual([1]);
    expect(net.node(2).leader).toBe(1);
  });

  test("when no voter holds the lost entries, the floors settle from the pre-votes and a leader is elected", () => {
    // All three restarted after losing their newest records: 1 and 2 index 6, 3 index 5 (which 1 and 2
    // still hold). Nobody holds index 6, so it never committed; index 5 may have.
    const net = new Net();
    net.add(new RaftNode(config(1, []), withFloor(restartWithLog([1, 1, 2, 2, 2], 2, VOTERS, 4), 2, 6)));
    net.add(new RaftNode(config(2, []), withFloor(restartWithLog([1, 1, 2, 2, 2], 2, VOTERS, 4), 2, 6)));
    net.add(new RaftNode(config(3, []), withFloor(restartWithLog([1, 1, 2, 2], 2, VOTERS, 4), 2, 5)));
    net.tickAll(200);
    const ls = leaders(net, VOTERS);
    expect(ls.length).toBe(1);
    expect([1, 2]).toContain(ls[0]!);
    for (const id of VOTERS) {
      expect(net.node(id).entryAt(5)?.term).toBe(2);
      expect(net.node(id).voteFloor).toBeUndefined();
    }
  });

  test("pre-votes from an earlier term are no evidence: the asker may still receive the entry", () => {
    const n = new RaftNode(config(2, []), withFloor(restartWithLog([1, 1, 2, 2], 3, VOTERS, 4), 3, 5));
    for (const from of [1, 3]) {
      n.step({ type: MessageType.PreVote, from, to: 2, term: 3, logTerm: 2, index: 4, commit: 0, reject: false, rejectHint: 0, hintTerm: 0, entries: [] });
    }
    expect(n.voteFloor).toEqual({ term: 3, index: 5 });
  });

  test("a node behind its floor does not take over when the leader asks it to (TimeoutNow)", () => {
    const n = new RaftNode(config(2, []), withFloor(restartWithLog([1, 1, 2, 2], 2, VOTERS, 4), 2, 5));
    n.step({ type: MessageType.TimeoutNow, from: 1, to: 2, term: 2, logTerm: 0, index: 0, commit: 0, reject: false, rejectHint: 0, hintTerm: 0, entries: [] });
    expect(n.role).toBe(Role.Follower);
    expect(n.term).toBe(2);
  });

  test("a node alone in its group has nobody to wait for", () => {
    const n = new RaftNode(config(1, []), withFloor(restartWithLog([1, 1], 1, [1], 2), 1, 3));
    expect(n.voteFloor).toBeUndefined();
    n.campaign();
    expect(n.role).toBe(Role.Leader);
  });
});
