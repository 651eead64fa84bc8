// How a leader reacts to a message of its own term.
import { ProgressState } from "./progress";
import type { Raft } from "./raft";
import { MessageType, type Message } from "./types";

export function stepLeader(r: Raft, m: Message): void {
  const pr = r.progress.get(m.from);
  switch (m.type) {
    case MessageType.AppendResponse: {
      if (pr === undefined) return;
      pr.recentActive = true;
      if (m.reject) {
        // Fast backtracking: jump to the last index where our log can agree with the follower's.
        let probe = m.rejectHint;
        if (m.hintTerm > 0) probe = r.log.findConflictByTerm(m.rejectHint, m.hintTerm)[0];
        if (m.index <= pr.match && m.rejectHint < pr.match) {
          pr.lostEntries(Math.min(probe, m.rejectHint));
          r.sendAppend(m.from);
          return;
        }
        if (pr.maybeDecrTo(m.index, probe)) {
          if (pr.state === ProgressState.Replicate) pr.becomeProbe();
          r.sendAppend(m.from);
        }
        return;
      }
      const wasPaused = pr.isPaused();
      const updated = pr.maybeUpdate(m.index);
      if (pr.state === ProgressState.Snapshot && pr.match >= pr.pendingSnapshot) {
        pr.becomeProbe();
        pr.becomeReplicate();
      } else if (updated && pr.state === ProgressState.Probe) {
        pr.becomeReplicate();
      } else if (pr.state === ProgressState.Replicate) {
        pr.inflights.freeLE(m.index);
      }
      if (!updated && !wasPaused) return;
      if (r.maybeCommit()) {
        r.afterCommit();
        if (r.progress.get(m.from) === undefined) return; // we stepped down or the peer was removed
      } else if (wasPaused) {
        r.sendAppend(m.from);
      }
      // Keep the pipeline full.
      while (r.sendAppend(m.from, false)) {
        // each call sends one message until the window closes or nothing is left
      }
      if (m.from === r.leadTransferee && pr.match === r.log.lastIndex) {
        r.send(r.newMessage(MessageType.TimeoutNow, m.from));
      }
      return;
    }
    case MessageType.HeartbeatResponse:
      if (pr === undefined) return;
      pr.recentActive = true;
      pr.probeSent = false;
      // A full window with lost acknowledgements would stall forever; free one slot per heartbeat.
      if (pr.state === ProgressState.Replicate && pr.inflights.full()) pr.inflights.freeFirst();
      if (pr.match < r.log.lastIndex) r.sendAppend(m.from);
      return;
    case MessageType.SnapshotStatus:
      r.reportSnapshot(m.from, !m.reject);
      return;
    case MessageType.TransferLeader:
      r.transferLeadership(m.index);
      return;
    default:
      return;
  }
}
