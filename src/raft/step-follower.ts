// How a follower reacts to a message of its own term.
import type { Raft } from "./raft";
import { MessageType, NONE, type Message } from "./types";

export function stepFollower(r: Raft, m: Message): void {
  switch (m.type) {
    case MessageType.Append:
      r.electionElapsed = 0;
      r.leader = m.from;
      r.handleAppend(m);
      return;
    case MessageType.Heartbeat:
      r.electionElapsed = 0;
      r.leader = m.from;
      r.handleHeartbeat(m);
      return;
    case MessageType.Snapshot:
      r.electionElapsed = 0;
      r.leader = m.from;
      r.handleSnapshot(m);
      return;
    case MessageType.TransferLeader:
      // Forwarded to the leader; `index` names the transferee.
      if (r.leader !== NONE) {
        const fwd = r.newMessage(MessageType.TransferLeader, r.leader);
        fwd.index = m.index;
        r.send(fwd);
      }
      return;
    case MessageType.TimeoutNow:
      // The leader asks us to take over: skip pre-vote and the voters' lease.
      r.hup(true);
      return;
    default:
      return;
  }
}
