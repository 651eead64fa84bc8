// Membership changes, one at a time, taking effect on commit.
import { describe, expect, test } from "bun:test";
import { RaftNode } from "../../src/raft/node";
import { Role } from "../../src/raft/types";
import { Net, config } from "./harness";

function threeWithLeader(): Net {
  const net = Net.of([1, 2, 3]);
  net.elect(1);
  net.tickAll(1);
  return net;
}

describe("learners", () => {
  test("a new node joins as a learner, catches up from the log, and is promoted to voter", () => {
    const net = threeWithLeader();
    net.node(1).propose(new Uint8Array([7]));
    net.drain(1);
    net.node(1).proposeConfChange({ type: "add-learner", node: 4 });
    net.drain(1);
    net.add(new RaftNode(config(4, []))); // joins empty and learns the membership from the log
    net.deliverAll();
    net.tickAll(2);
    expect(net.node(1).conf).toEqual({ voters: [1, 2, 3], learners: [4] });
    expect(net.node(4).conf).toEqual({ voters: [1, 2, 3], learners: [4] });
    expect(net.node(4).lastIndex).toBe(net.node(1).lastIndex);
    expect(net.node(4).role).toBe(Role.Follower);

    net.node(1).proposeConfChange({ type: "promote", node: 4 });
    net.drain(1);
    net.tickAll(2);
    for (const id of [1, 2, 3, 4]) expect(net.node(id).conf).toEqual({ voters: [1, 2, 3, 4], learners: [] });
    // Node 4 now counts: with 2 and 3 gone, 1 and 4 are not a majority of four, so nothing commits.
    net.filter = (m) => m.to !== 2 && m.to !== 3 && m.from !== 2 && m.from !== 3;
    const index = net.node(1).propose(new Uint8Array([8]));
    net.drain(1);
    net.deliverAll();
    expect(net.node(1).commitIndex).toBeLessThan(index);
  });

  test("a second change is refused while the first is uncommitted", () => {
    const net = threeWithLeader();
    net.isolate(2);
    net.filter = (m) => m.to === 1; // nothing reaches the followers
    net.node(1).proposeConfChange({ type: "add-learner", node: 4 });
    expect(() => net.node(1).proposeConfChange({ type: "add-learner", node: 5 })).toThrow(
      expect.objectContaining({ reason: "conf-change-pending" }),
    );
    expect(() => net.node(1).proposeConfChange({ type: "promote", node: 2 })).toThrow();
  });

  test("invalid changes are refused up front", () => {
    const net = threeWithLeader();
    expect(() => net.node(1).proposeConfChange({ type: "promote", node: 9 })).toThrow(
      expect.objectContaining({ reason: "invalid-conf-change" }),
    );
    expect(() => net.node(1).proposeConfChange({ type: "add-learner", node: 2 })).toThrow();
  });
});

describe("removal", () => {
  test("a removed follower stops counting toward the quorum", () => {
    const net = threeWithLeader();
    net.node(1).proposeConfChange({ type: "remove", node: 3 });
    net.drain(1);
    net.tickAll(2);
    expect(net.node(1).conf.voters).toEqual([1, 2]);
    net.isolate(3);
    const index = net.node(1).propose(new Uint8Array([1]));
    net.drain(1);
    net.tickAll(2);
    expect(net.node(1).commitIndex).toBeGreaterThanOrEqual(index);
  });

  test("the leader removes itself: it steps down once the change commits and a successor takes over", () => {
    const net = threeWithLeader();
    const term = net.node(1).term;
    net.node(1).proposeConfChange({ type: "remove", node: 1 });
    net.drain(1);
    net.deliverAll();
    expect(net.node(1).role).toBe(Role.Follower);
    net.tickAll(3);
    const leaders = [2, 3].filter((id) => net.node(id).role === Role.Leader);
    expect(leaders).toHaveLength(1);
    expect(net.node(leaders[0]!).term).toBe(term + 1); // handed over by TimeoutNow, no timeout needed
    expect(net.node(leaders[0]!).conf.voters).toEqual([2, 3]);
    // The removed node never campaigns again.
    net.tick(1, 100);
    expect(net.node(1).role).toBe(Role.Follower);
  });
});
