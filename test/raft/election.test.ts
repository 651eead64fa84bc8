// Raft §5.2 leader election, plus the pre-vote and check-quorum extensions (thesis §9.6).
import { describe, expect, test } from "bun:test";
import { RaftNode } from "../../src/raft/node";
import { MessageType, Role } from "../../src/raft/types";
import { Net, config } from "./harness";

describe("leader election", () => {
  test("a node that times out wins the election and the others follow", () => {
    const net = Net.of([1, 2, 3]);
    // 1 ticks past its randomized timeout (at most 2 * electionTicks) while the others stay quiet.
    net.tick(1, 20);
    net.deliverAll();
    expect(net.node(1).role).toBe(Role.Leader);
    expect(net.node(1).term).toBe(2); // bootstrap is term 1
    for (const id of [2, 3]) {
      expect(net.node(id).role).toBe(Role.Follower);
      expect(net.node(id).leader).toBe(1);
      expect(net.node(id).vote).toBe(1);
    }
  });

  test("the new leader's first entry is a noop of its term, and it commits everywhere", () => {
    const net = Net.of([1, 2, 3]);
    net.elect(1);
    const last = net.node(1).lastIndex;
    expect(net.node(1).entryAt(last)?.term).toBe(2);
    net.tickAll(1);
    for (const id of [1, 2, 3]) expect(net.node(id).commitIndex).toBe(last);
  });

  test("a candidate with a shorter log of the same term is refused (election restriction §5.4.1)", () => {
    const net = Net.of([1, 2, 3]);
    net.elect(1);
    net.node(1).propose(new Uint8Array([1]));
    net.drain(1);
    net.filter = (m) => m.to !== 3; // 3 misses the entry
    net.deliverAll();
    net.heal();
    // 3 asks for votes directly (no pre-vote) once nobody leads.
    net.isolate(1);
    net.tickAll(25);
    expect(net.node(2).role).toBe(Role.Leader);
    expect(net.node(3).leader).toBe(2);
  });

  test("a learner never campaigns", () => {
    const net = new Net();
    net.add(new RaftNode(config(1, [1], { learners: [2] })));
    net.add(new RaftNode(config(2, [1], { learners: [2] })));
    net.tick(2, 100);
    expect(net.node(2).role).toBe(Role.Follower);
    expect(net.queue.length).toBe(0);
  });
});

describe("pre-vote", () => {
  test("a partitioned node does not inflate its term, and rejoining does not disrupt the leader", () => {
    const net = Net.of([1, 2, 3]);
    net.elect(1);
    const term = net.node(1).term;
    net.isolate(3);
    for (let i = 0; i < 10; i++) net.tickAll(10);
    expect(net.node(3).term).toBe(term); // pre-votes failed: no term bump
    expect(net.node(3).role).toBe(Role.PreCandidate);
    net.heal();
    net.tickAll(5);
    expect(net.node(1).role).toBe(Role.Leader);
    expect(net.node(1).term).toBe(term);
    expect(net.node(3).leader).toBe(1);
  });

  test("without pre-vote the same partition forces a new election", () => {
    const net = Net.of([1, 2, 3], { preVote: false, checkQuorum: false });
    net.elect(1);
    const term = net.node(1).term;
    net.isolate(3);
    net.tickAll(30);
    expect(net.node(3).term).toBeGreaterThan(term);
    net.heal();
    net.tickAll(30);
    expect(net.node(1).term).toBeGreaterThan(term); // the old leader was deposed
  });
});

describe("check-quorum", () => {
  test("a leader that hears from no majority for an election timeout steps down", () => {
    const net = Net.of([1, 2, 3]);
    net.elect(1);
    net.isolate(1);
    net.tick(1, 10);
    expect(net.node(1).role).toBe(Role.Leader); // first round: peers were active
    net.tick(1, 10);
    expect(net.node(1).role).toBe(Role.Follower);
    expect(net.node(1).leader).toBe(0);
  });

  test("followers inside their leader lease ignore vote requests from a higher term", () => {
    const net = Net.of([1, 2, 3]);
    net.elect(1);
    const term = net.node(1).term;
    net.node(2).step({
      type: MessageType.Vote, from: 3, to: 2, term: term + 5, logTerm: term, index: 100,
      commit: 0, reject: false, rejectHint: 0, hintTerm: 0, entries: [],
    });
    net.drain(2);
    expect(net.node(2).term).toBe(term);
    expect(net.queue.filter((m) => m.type === MessageType.VoteResponse)).toHaveLength(0);
  });
});
