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
  test("a second ready() before advance() is refused", () => {
    const n = new RaftNode(config(1, [1]));
    n.ready();
    expect(() => n.ready()).toThrow();
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
