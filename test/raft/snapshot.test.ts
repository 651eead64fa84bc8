// Compaction, snapshots for lagging followers, and restarting from what was persisted.
import { describe, expect, test } from "bun:test";
import { RaftNode } from "../../src/raft/node";
import { MessageType, Role } from "../../src/raft/types";
import { Net, config } from "./harness";

describe("snapshots", () => {
  test("a follower behind the leader's compaction point receives a snapshot and continues from it", () => {
    const net = Net.of([1, 2, 3]);
    net.elect(1);
    net.isolate(3);
    const appliedBefore = net.node(3).appliedIndex;
    for (let i = 0; i < 20; i++) net.node(1).propose(new Uint8Array([i]));
    net.drain(1);
    net.tickAll(2);
    const leader = net.node(1);
    const meta = leader.compact(leader.appliedIndex, new TextEncoder().encode("state@" + leader.appliedIndex));
    expect(leader.firstIndex).toBe(meta.index + 1);
    expect(meta.conf).toEqual({ voters: [1, 2, 3], learners: [] });

    net.heal();
    net.tickAll(3);
    const snapMsg = net.delivered.find((m) => m.type === MessageType.Snapshot && m.to === 3);
    expect(snapMsg?.snapshot?.index).toBe(meta.index);
    const installed = net.stored.get(3)!.readies.find((rd) => rd.snapshot !== undefined);
    expect(installed?.snapshot?.index).toBe(meta.index);
    expect(new TextDecoder().decode(installed!.snapshot!.data)).toBe("state@" + meta.index);
    // After the snapshot, 3 follows the log again.
    const index = leader.propose(new Uint8Array([99]));
    net.drain(1);
    net.tickAll(2);
    expect(net.node(3).appliedIndex).toBe(index);
    expect(net.node(3).firstIndex).toBe(meta.index + 1);
    const applied = net.stored.get(3)!.applied;
    expect(applied[applied.length - 1]!.index).toBe(index);
    expect(applied.every((e) => e.index > meta.index || e.index <= appliedBefore)).toBe(true);
  });

  test("compaction beyond the applied index is an invariant violation", () => {
    const net = Net.of([1]);
    net.elect(1);
    expect(() => net.node(1).compact(net.node(1).lastIndex + 5, new Uint8Array())).toThrow();
  });

  test("a restarted node resumes from its persisted state and keeps its vote", () => {
    const net = Net.of([1, 2, 3]);
    net.elect(1);
    net.node(1).propose(new Uint8Array([5]));
    net.drain(1);
    net.tickAll(2);
    const s = net.stored.get(2)!;
    const restarted = new RaftNode(config(2, []), { hardState: s.hardState, entries: s.entries, snapshot: s.snapshot });
    expect(restarted.term).toBe(net.node(1).term);
    expect(restarted.vote).toBe(1);
    expect(restarted.commitIndex).toBe(s.hardState.commit);
    expect(restarted.conf).toEqual({ voters: [1, 2, 3], learners: [] });
    expect(restarted.role).toBe(Role.Follower);
    // Committed entries after the (absent) snapshot are delivered again to rebuild the state machine.
    expect(restarted.ready().committedEntries.length).toBe(s.hardState.commit);
  });
});
