// A node whose storage lost the newest entry it had written (a torn or cut WAL tail) restarts with a vote
// floor: it may have acknowledged that entry, so it must not help a log without it win an election.
import { describe, expect, test } from "bun:test";
import { RaftNode } from "../../src/raft/node";
import { encodeConfChange } from "../../src/raft/confchange";
import { EntryType, MessageType, Role, laterVoteFloor, sameVoteFloor, type NodeId, type RestartState } from "../../src/raft/types";
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

  test("a node restarted with no membership (its first entries lost) keeps its floor until its commit reaches it", () => {
    const net = new Net();
    net.add(new RaftNode(config(1, []), restartWithLog([1, 1, 2, 2, 2], 2, VOTERS, 5)));
    net.add(new RaftNode(config(2, []), restartWithLog([1, 1, 2, 2, 2], 2, VOTERS, 5)));
    // Node 3 let every entry go: no snapshot, no entries, so no ConfChange tells it the voters.
    net.add(new RaftNode(config(3, []), { hardState: { term: 2, vote: 0, commit: 0 }, entries: [], voteFloor: { term: 2, index: 5 } }));
    expect(net.node(3).voteFloor).toEqual({ term: 2, index: 5 });
    net.tickAll(100);
    const [leader] = leaders(net, VOTERS);
    expect(leader === 1 || leader === 2).toBe(true);
    expect(net.node(3).lastIndex).toBeGreaterThanOrEqual(6);
    expect(net.node(3).voteFloor).toBeUndefined(); // settled by the commit index, once caught up
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

  test("floors from two losses: votes need the later entry, evidence must be behind the earlier one", () => {
    const f = laterVoteFloor({ term: 2, index: 6 }, { term: 2, index: 5 })!;
    expect(f).toEqual({ term: 2, index: 6, lowest: { term: 2, index: 5 } });
    expect(laterVoteFloor(f, { term: 3, index: 9 })).toEqual({ term: 3, index: 9, lowest: { term: 2, index: 5 } });
    expect(laterVoteFloor(undefined, { term: 2, index: 5 })).toEqual({ term: 2, index: 5 });
    expect(sameVoteFloor(f, { term: 2, index: 6 })).toBe(false);
    // Node 2 lost index 6 and then index 5. A voter asking in a later term with a log at 5 lacks 6 but
    // may hold a committed 5: no evidence. One behind 5 is.
    const n = new RaftNode(config(2, []), { ...restartWithLog([1, 1, 2, 2], 2, VOTERS, 4), voteFloor: f });
    n.step({ type: MessageType.PreVote, from: 1, to: 2, term: 3, logTerm: 2, index: 5, commit: 0, reject: false, rejectHint: 0, hintTerm: 0, entries: [] });
    n.step({ type: MessageType.PreVote, from: 3, to: 2, term: 3, logTerm: 2, index: 4, commit: 0, reject: false, rejectHint: 0, hintTerm: 0, entries: [] });
    expect(n.voteFloor).toEqual(f);
    n.step({ type: MessageType.PreVote, from: 1, to: 2, term: 3, logTerm: 2, index: 4, commit: 0, reject: false, rejectHint: 0, hintTerm: 0, entries: [] });
    expect(n.voteFloor).toBeUndefined();
  });

  test("a removed voter holding the only other copy stands when an older membership asks it, leads once, and hands over", () => {
    // Voters {1,2,3}; index 5 removed voter 1 and was committed by 1 and 2; index 6 reached 1 only.
    // Then 2 lost index 5 with its tail (floor 5), and 3 lags at 4. 1 applied its own removal, so it did
    // not stand: 2 will not vote for 3's log, cannot stand on its own, and the group stalled.
    const withRemovalOf1 = (r: RestartState): RestartState => ({
      ...r,
      entries: r.entries.map((e) =>
        e.index === 5 ? { ...e, type: EntryType.ConfChange, data: encodeConfChange({ type: "remove", node: 1 }) } : e,
      ),
    });
    const net = new Net();
    const one = net.add(new RaftNode(config(1, []), withRemovalOf1(restartWithLog([1, 1, 2, 2, 2, 2], 2, VOTERS, 5))));
    net.add(new RaftNode(config(2, []), withFloor(restartWithLog([1, 1, 2, 2], 2, VOTERS, 4), 2, 5)));
    net.add(new RaftNode(config(3, []), restartWithLog([1, 1, 2, 2], 2, VOTERS, 4)));
    expect(one.conf.voters).toEqual([2, 3]);
    net.tickAll(300);
    const [leader, ...others] = leaders(net, [2, 3]);
    expect(others).toEqual([]);
    expect(leader).toBeDefined();
    expect(one.role).toBe(Role.Follower);
    for (const id of [2, 3]) {
      const n = net.node(id);
      expect(n.entryAt(5)?.type).toBe(EntryType.ConfChange);
      expect(n.entryAt(6)?.term).toBe(2);
      expect(n.conf.voters).toEqual([2, 3]);
    }
    expect(net.node(2).voteFloor).toBeUndefined();
    // 1 led one term on the way (its entries reached the others), then handed over and stopped standing.
    const t = net.node(leader!).term;
    net.tickAll(100);
    expect(net.node(leader!).term).toBe(t);
  });

  test("without pre-vote, a node behind its floor still shows its log, so a removed holder of the entry stands", () => {
    // Voters {1,2,3}; index 5 removed voter 2 and committed; 2 also holds index 6, which 3 acknowledged
    // and lost (floor 6). 1 and 2 applied the removal ({1,3}); 3 has not ({1,2,3}). 3 refuses 1 (its log
    // lacks 6) and cannot stand itself; only 2 can lead, and it stands only when an older membership asks
    // it. 3's requests are the only ones that reach 2: a node that cannot win a real vote pre-votes, even
    // where pre-vote is off. 2 also stopped at term 2 while the others went on to 9: it learns their term
    // from the refusal of its first request (else it campaigns one term at a time behind them for ever).
    const removalOf2 = (r: RestartState): RestartState => ({
      ...r,
      entries: r.entries.map((e) => (e.index === 5 ? { ...e, type: EntryType.ConfChange, data: encodeConfChange({ type: "remove", node: 2 }) } : e)),
    });
    const off = { preVote: false };
    const net = new Net();
    net.add(new RaftNode(config(1, [], off), removalOf2(restartWithLog([1, 1, 2, 2, 2], 9, VOTERS, 5))));
    const two = net.add(new RaftNode(config(2, [], off), removalOf2(restartWithLog([1, 1, 2, 2, 2, 2], 2, VOTERS, 5))));
    net.add(new RaftNode(config(3, [], off), withFloor(removalOf2(restartWithLog([1, 1, 2, 2, 2], 9, VOTERS, 4)), 2, 6)));
    expect(net.node(1).conf.voters).toEqual([1, 3]);
    expect(two.conf.voters).toEqual([1, 3]);
    expect(net.node(3).conf.voters).toEqual([1, 2, 3]);
    net.tickAll(400);
    const [leader, ...others] = leaders(net, VOTERS);
    expect(others).toEqual([]);
    expect(leader).toBeDefined();
    for (const id of [1, 3]) {
      const n = net.node(id);
      expect(n.entryAt(6)?.term).toBe(2);
      expect(n.conf.voters).toEqual([1, 3]);
    }
    expect(net.node(3).voteFloor).toBeUndefined();
  });

  test("a node that knows no membership at all never stands, though asked for its vote", () => {
    // Restarted with nothing (no snapshot, no entries: it lost the entries that named the voters). As a
    // caretaker it would ask no one, and only raise its term past the real candidates' at each timeout.
    const n = new RaftNode(config(3, [], { preVote: false }), { hardState: { term: 5, vote: 0, commit: 0 }, entries: [] });
    const ask = { type: MessageType.Vote, from: 1, to: 3, term: 5, logTerm: 2, index: 20, commit: 0, reject: false, rejectHint: 0, hintTerm: 0, entries: [] };
    n.step(ask);
    for (let i = 0; i < 100; i++) n.tick();
    expect(n.role).toBe(Role.Follower);
    expect(n.term).toBe(5);
    // So the real candidate's next request, in the next term, is granted.
    n.step({ ...ask, term: 6 });
    const granted = n.ready().messages.filter((m) => m.type === MessageType.VoteResponse && m.term === 6 && !m.reject);
    expect(granted.length).toBe(1);
  });

  test("a vote request from an earlier term is refused with our term", () => {
    const n = new RaftNode(config(3, [], { preVote: false }), restartWithLog([1, 1], 7, VOTERS, 2));
    n.step({ type: MessageType.Vote, from: 2, to: 3, term: 3, logTerm: 1, index: 9, commit: 0, reject: false, rejectHint: 0, hintTerm: 0, entries: [] });
    const answers = n.ready().messages.filter((m) => m.to === 2);
    expect(answers.map((m) => [m.type, m.term, m.reject])).toEqual([[MessageType.VoteResponse, 7, true]]);
    expect(n.term).toBe(7);
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
