// How a pre-candidate or candidate reacts to a message of its own term.
import type { Raft } from "./raft";
import { MessageType, NONE, Role, type Message } from "./types";

export function stepCandidate(r: Raft, m: Message): void {
  switch (m.type) {
    case MessageType.Append:
      r.becomeFollower(m.term, m.from); // a leader of our term exists
      r.handleAppend(m);
      return;
    case MessageType.Heartbeat:
      r.becomeFollower(m.term, m.from);
      r.handleHeartbeat(m);
      return;
    case MessageType.Snapshot:
      r.becomeFollower(m.term, m.from);
      r.handleSnapshot(m);
      return;
    case MessageType.PreVoteResponse:
    case MessageType.VoteResponse: {
      const mine = r.role === Role.PreCandidate ? MessageType.PreVoteResponse : MessageType.VoteResponse;
      if (m.type !== mine) return;
      const outcome = r.poll(m.from, !m.reject);
      if (outcome === "won") r.onElectionWon();
      else if (outcome === "lost") r.becomeFollower(r.term, NONE);
      return;
    }
    default:
      return;
  }
}
