// Leader transfer (thesis §3.10): the target campaigns at once when told TimeoutNow.
import { describe, expect, test } from "bun:test";
import { MessageType, Role } from "../../src/raft/types";
import { Net } from "./harness";

describe("leader transfer", () => {
  test("the leader hands over to a caught-up follower without an election timeout", () => {
    const net = Net.of([1, 2, 3]);
    net.elect(1);
    net.tickAll(1);
    const term = net.node(1).term;
    net.node(1).transferLeadership(3);
    net.drain(1);
    expect(net.queue.some((m) => m.type === MessageType.TimeoutNow && m.to === 3)).toBe(true);
    net.deliverAll();
    expect(net.node(3).role).toBe(Role.Leader);
    expect(net.node(3).term).toBe(term + 1);
    expect(net.node(1).leader).toBe(3);
  });

  test("a lagging target is caught up first, and proposals are refused meanwhile", () => {
    const net = Net.of([1, 2, 3]);
    net.elect(1);
    net.filter = (m) => m.to !== 3;
    net.node(1).propose(new Uint8Array([1]));
    net.drain(1);
    net.deliverAll();
    net.heal();
    net.node(1).transferLeadership(3);
    expect(() => net.node(1).propose(new Uint8Array([2]))).toThrow(expect.objectContaining({ reason: "transfer-in-progress" }));
    net.drain(1);
    net.deliverAll();
    net.tickAll(1);
    expect(net.node(3).role).toBe(Role.Leader);
  });

  test("a follower asked to transfer forwards the request to the leader", () => {
    const net = Net.of([1, 2, 3]);
    net.elect(1);
    net.tickAll(1);
    net.node(2).transferLeadership(2);
    net.drain(2);
    expect(net.queue.some((m) => m.type === MessageType.TransferLeader && m.to === 1 && m.index === 2)).toBe(true);
    net.deliverAll();
    expect(net.node(2).role).toBe(Role.Leader);
  });

  test("a transfer that cannot finish within an election timeout is abandoned", () => {
    const net = Net.of([1, 2, 3]);
    net.elect(1);
    net.tickAll(1);
    net.isolate(3);
    net.node(1).transferLeadership(3);
    net.drain(1);
    net.tickAll(10);
    expect(net.node(1).role).toBe(Role.Leader);
    expect(() => net.node(1).propose(new Uint8Array([1]))).not.toThrow();
  });

  test("a leader that steps down keeps its term and vote, refuses proposals, and the others elect", () => {
    const net = Net.of([1, 2, 3]);
    net.elect(1);
    net.tickAll(1);
    const { term, vote } = net.node(1);
    net.node(1).stepDown();
    expect(net.node(1).role).toBe(Role.Follower);
    expect(net.node(1).term).toBe(term);
    expect(net.node(1).vote).toBe(vote);
    expect(net.node(1).leader).toBe(0);
    expect(() => net.node(1).propose(new Uint8Array([1]))).toThrow(expect.objectContaining({ reason: "not-leader" }));
    // It sends no more heartbeats: the followers' election timers run out and one of them leads.
    net.isolate(1);
    net.tickAll(40);
    const leaders = [2, 3].filter((id) => net.node(id).role === Role.Leader);
    expect(leaders.length).toBe(1);
    expect(net.node(leaders[0]!).term).toBeGreaterThan(term);
  });
});
