// A node whose storage lost its newest hard state record (a torn WAL tail) may already have sent the vote
// that record carried: it restarts in that record's term having voted (for itself), so it cannot vote for
// a second candidate in the same term.
import { describe, expect, test } from "bun:test";
import { RaftNode } from "../../src/raft/node";
import { MessageType, NONE, hardStateAfterLostVote, type Message, type NodeId } from "../../src/raft/types";
import { config, restartWithLog } from "./harness";

const VOTERS: NodeId[] = [1, 2, 3];

function voteRequest(from: NodeId, to: NodeId, term: number, logTerm: number, index: number): Message {
  return { type: MessageType.Vote, from, to, term, logTerm, index, commit: 0, reject: false, rejectHint: 0, hintTerm: 0, entries: [] };
}

/** Steps `m` into `node` and returns its answer to the sender. */
function answer(node: RaftNode, m: Message): Message | undefined {
  node.step(m);
  const rd = node.ready();
  node.advance(rd);
  return rd.messages.find((r) => r.type === MessageType.VoteResponse && r.to === m.from);
}

describe("a hard state lost with the WAL's tail", () => {
  test("restart state: the lost record's term, voted for itself, unless it can have carried nothing new", () => {
    const hs = { term: 4, vote: NONE, commit: 7 };
    expect(hardStateAfterLostVote(hs, undefined, 2)).toBe(hs);
    expect(hardStateAfterLostVote(hs, 3, 2)).toBe(hs); // older than what is kept: nothing lost
    expect(hardStateAfterLostVote(hs, 6, 2)).toEqual({ term: 6, vote: 2, commit: 7 });
    expect(hardStateAfterLostVote(hs, 4, 2)).toEqual({ term: 4, vote: 2, commit: 7 });
    const voted = { term: 4, vote: 3, commit: 7 };
    expect(hardStateAfterLostVote(voted, 4, 2)).toBe(voted); // its vote in term 4 is known and kept
  });

  test("the node refuses a second candidate in the lost record's term and still votes in a later one", () => {
    // Node 2 granted candidate 1 its vote in term 3, then lost that hard state record: without the rule it
    // would restart at term 2 with no vote and could also elect candidate 3 in term 3.
    const stored = restartWithLog([1, 1, 2, 2], 2, VOTERS, 4);
    const hs = hardStateAfterLostVote(stored.hardState, 3, 2);
    const node = new RaftNode(config(2, []), { ...stored, hardState: hs });
    expect(node.term).toBe(3);
    expect(answer(node, voteRequest(3, 2, 3, 2, 4))?.reject).toBe(true);
    expect(node.vote).toBe(2);
    expect(answer(node, voteRequest(3, 2, 4, 2, 4))?.reject).toBe(false);
    expect(node.vote).toBe(3);

    // The same node restarted from the stored state alone grants the term-3 vote: what the rule prevents.
    const forgetful = new RaftNode(config(2, []), stored);
    expect(answer(forgetful, voteRequest(3, 2, 3, 2, 4))?.reject).toBe(false);
  });
});
