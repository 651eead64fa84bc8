// Quiescence: an idle group's leader may stop heartbeats after one last heartbeat that carries the commit
// index; the driver stops ticking. The core only decides when that is safe and who may sleep on it.
import { describe, expect, test } from "bun:test";
import { MessageType, Role } from "../../src/raft/types";
import { Net } from "./harness";

const data = (s: string) => new TextEncoder().encode(s);

describe("quiesce", () => {
  test("only a leader whose every member holds the whole committed log may quiesce", () => {
    const net = Net.of([1, 2, 3]);
    expect(net.node(1).quiescable()).toBe(false); // not a leader yet
    net.elect(1);
    net.tickAll(1);
    expect(net.node(1).quiescable()).toBe(true);
    expect(net.node(2).quiescable()).toBe(false); // followers never do

    net.node(1).propose(data("x"));
    net.drain(1);
    expect(net.node(1).quiescable()).toBe(false); // an entry in flight
    net.deliverAll();
    net.tickAll(1);
    expect(net.node(1).quiescable()).toBe(true);

    // A member that lags (its appends are lost) keeps the group awake.
    net.filter = (m) => m.to !== 3;
    net.node(1).propose(data("y"));
    net.drain(1);
    net.deliverAll();
    expect(net.node(1).commitIndex).toBe(net.node(1).lastIndex); // committed by 1 and 2
    expect(net.node(1).quiescable()).toBe(false);
    expect(net.node(1).quiesce()).toBe(false);
    expect(net.queue).toEqual([]); // refused: nothing sent
    net.heal();
    net.tickAll(2);
    expect(net.node(1).quiescable()).toBe(true);
  });

  test("the quiesce heartbeat carries the commit index, and followers that hold it may sleep on it", () => {
    const net = Net.of([1, 2, 3]);
    net.elect(1);
    net.node(1).propose(data("x"));
    net.drain(1);
    // Followers miss whatever told them the new commit index; the quiesce heartbeat must carry it.
    net.filter = (m) => !(m.to !== 1 && m.entries.length === 0);
    net.deliverAll();
    net.heal();
    expect(net.node(2).commitIndex).toBeLessThan(net.node(1).commitIndex);
    expect(net.node(1).quiesce()).toBe(true);
    net.drain(1);
    const sent = net.queue.filter((m) => m.type === MessageType.Heartbeat);
    expect(sent.map((m) => [m.to, m.quiesce, m.commit])).toEqual([
      [2, true, net.node(1).commitIndex],
      [3, true, net.node(1).commitIndex],
    ]);
    const asleep: number[] = [];
    while (net.queue.length > 0) {
      const m = net.queue[0]!;
      net.deliverOne();
      if (m.quiesce && net.node(m.to).canSleepOn(m)) asleep.push(m.to);
    }
    expect(asleep).toEqual([2, 3]);
    for (const id of [2, 3]) {
      expect(net.node(id).commitIndex).toBe(net.node(1).commitIndex);
      expect(net.node(id).appliedIndex).toBe(net.node(1).commitIndex);
    }
  });

  test("a follower does not sleep on a quiesce heartbeat from another term, another node, or past its log", () => {
    const net = Net.of([1, 2, 3]);
    net.elect(1);
    net.tickAll(1);
    expect(net.node(1).quiesce()).toBe(true);
    net.drain(1);
    const hb = net.queue.find((m) => m.to === 2)!;
    net.deliverAll();
    const n = net.node(2);
    expect(n.canSleepOn(hb)).toBe(true);
    expect(n.canSleepOn({ ...hb, quiesce: false })).toBe(false);
    expect(n.canSleepOn({ ...hb, term: hb.term + 1 })).toBe(false);
    expect(n.canSleepOn({ ...hb, from: 3 })).toBe(false);
    expect(n.canSleepOn({ ...hb, commit: hb.commit + 1 })).toBe(false); // the leader committed entries this replica lacks
    expect(n.canSleepOn({ ...hb, type: MessageType.Append })).toBe(false);
    expect(n.role).toBe(Role.Follower);
  });
});
