// The ready/advance contract and input hygiene, as a broker or sentinel driver relies on them.
import { describe, expect, test } from "bun:test";
import { RaftNode } from "../../src/raft/node";
import { EntryType, MessageType, type Message } from "../../src/raft/types";
import { Net, config, restartWithLog } from "./harness";

function append(to: number, from: number, term: number, index: number, logTerm: number, terms: number[], commit = 0): Message {
  return {
    type: MessageType.Append, from, to, term, logTerm, index, commit, reject: false, rejectHint: 0, hintTerm: 0,
    entries: terms.map((t, i) => ({ term: t, index: index + 1 + i, type: EntryType.Normal, data: new Uint8Array([i]) })),
  };
}

describe("driver contract", () => {
  test("readies overlap: each holds only what earlier ones did not, and they advance oldest first", () => {
    const net = Net.of([1, 2, 3]);
    net.elect(1);
    net.tickAll(1);
    const n = net.node(1);
    const last = n.lastIndex;
    n.propose(new Uint8Array([1]));
    const first = n.ready(); // entry last+1 "being written"
    expect(first.entries.map((e) => e.index)).toEqual([last + 1]);
    n.propose(new Uint8Array([2]));
    expect(n.hasReady()).toBe(true);
    const second = n.ready(); // the next write, while the first one's fsync is in flight
    expect(second.entries.map((e) => e.index)).toEqual([last + 2]);
    expect(second.messages.every((m) => m.entries.every((e) => e.index === last + 2))).toBe(true);
    expect(n.readiesInFlight).toBe(2);
    expect(() => n.advance(second)).toThrow();
    n.advance(first);
    n.advance(second);
    expect(n.readiesInFlight).toBe(0);
  });

  test("a leader counts itself only for what advance() reported durable, with readies overlapping", () => {
    const net = Net.of([1, 2, 3]);
    net.elect(1);
    net.tickAll(1);
    const n = net.node(1);
    const index = n.propose(new Uint8Array([7]));
    const rd = n.ready();
    // One follower acknowledges; the leader's own write is still in flight, so nothing commits.
    n.step({ type: MessageType.AppendResponse, from: 2, to: 1, term: n.term, logTerm: 0, index, commit: 0, reject: false, rejectHint: 0, hintTerm: 0, entries: [] });
    expect(n.commitIndex).toBeLessThan(index);
    const later = n.ready();
    expect(later.committedEntries).toEqual([]);
    n.advance(rd);
    expect(n.commitIndex).toBe(index);
    n.advance(later);
    const applied = n.ready();
    expect(applied.committedEntries.map((e) => e.index)).toEqual([index]);
    n.advance(applied);
  });

  test("committed entries are handed out once, even while earlier readies are in flight", () => {
    const net = Net.of([1, 2, 3]);
    net.elect(1);
    net.tickAll(1);
    const f = net.node(2);
    const l = net.node(1);
    l.propose(new Uint8Array([1]));
    const lr = l.ready();
    f.step(lr.messages.find((m) => m.type === MessageType.Append && m.to === 2)!); // unwritten on f
    const w = f.ready();
    expect(w.entries.length).toBe(1);
    // The leader commits with another follower and tells this one, whose write is still in flight.
    f.step({ type: MessageType.Heartbeat, from: 1, to: 2, term: l.term, logTerm: 0, index: 0, commit: w.entries[0]!.index, reject: false, rejectHint: 0, hintTerm: 0, entries: [] });
    const c = f.ready();
    expect(c.entries).toEqual([]);
    expect(c.committedEntries.map((e) => e.index)).toEqual([w.entries[0]!.index]);
    expect(f.hasReady()).toBe(false);
    f.advance(w);
    f.advance(c);
    expect(f.appliedIndex).toBe(w.entries[0]!.index);
  });

  test("stepping between ready() and advance() works, and replaced entries are not taken as persisted", () => {
    const n = new RaftNode(config(2, []), restartWithLog([1], 1, [1, 2, 3]));
    n.step(append(2, 1, 2, 1, 1, [2, 2]));
    const first = n.ready(); // entries 2..3 of term 2, "being written"
    expect(first.entries.map((e) => e.index)).toEqual([2, 3]);
    n.step(append(2, 3, 3, 1, 1, [3])); // a newer leader replaces index 2 meanwhile
    n.advance(first);
    const second = n.ready();
    expect(second.entries.map((e) => [e.index, e.term])).toEqual([[2, 3]]);
    // The answer to the newer leader waits in the ready that persists its entry.
    expect(second.messages.some((m) => m.type === MessageType.AppendResponse && m.to === 3 && m.index === 2)).toBe(true);
    n.advance(second);
    expect(n.hasReady()).toBe(false);
  });

  test("malformed or misaddressed messages are dropped, never thrown", () => {
    const n = new RaftNode(config(2, []), restartWithLog([1], 1, [1, 2, 3]));
    n.step({ ...append(2, 1, 2, 1, 1, [2]), to: 9 });
    n.step(append(2, 1, 2, 1, 1, [3])); // entry term above the message term
    const gap = append(2, 1, 2, 1, 1, [2, 2]);
    gap.entries[1]!.index = 7;
    n.step(gap);
    n.step({ ...append(2, 1, 2, 1, 1, []), type: 99 as MessageType });
    expect(n.droppedMessages).toBe(4);
    expect(n.lastIndex).toBe(1);
  });

  test("proposals beyond the uncommitted byte limit are refused until entries commit", () => {
    const net = Net.of([1, 2, 3], { maxUncommittedBytes: 100 });
    net.elect(1);
    net.filter = () => false; // nothing gets through: nothing commits
    net.node(1).propose(new Uint8Array(80));
    expect(() => net.node(1).propose(new Uint8Array(80))).toThrow(expect.objectContaining({ reason: "too-many-uncommitted" }));
    net.heal();
    net.drain(1);
    net.deliverAll();
    net.tickAll(1);
    expect(() => net.node(1).propose(new Uint8Array(80))).not.toThrow();
  });

  test("status() reports per-peer progress on the leader only", () => {
    const net = Net.of([1, 2, 3]);
    net.elect(1);
    net.tickAll(1);
    const s = net.node(1).status();
    expect(s.progress?.map((p) => p.id).sort()).toEqual([1, 2, 3]);
    expect(s.progress?.find((p) => p.id === 2)?.match).toBe(net.node(1).lastIndex);
    expect(net.node(2).status().progress).toBeUndefined();
  });
});
