// What the leader knows about one follower's log, and how fast it may send to it.
//   probe:     one Append at a time until the follower's position is found;
//   replicate: optimistic pipelining within the inflight window;
//   snapshot:  paused until the follower has installed a snapshot (or the driver reports failure).
import { assert } from "./assert";
import { Inflights } from "./inflights";

export enum ProgressState {
  Probe = "probe",
  Replicate = "replicate",
  Snapshot = "snapshot",
}

export class Progress {
  match = 0;
  next: number;
  state = ProgressState.Probe;
  /** Probe: an Append is out; wait for its answer (or a heartbeat answer) before the next. */
  probeSent = false;
  pendingSnapshot = 0;
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  readonly inflights: Inflights;

  constructor(next: number, maxInflight: number, public isLearner: boolean) {
    this.next = next;
    this.inflights = new Inflights(maxInflight);
  }

  becomeProbe(): void {
    if (this.state === ProgressState.Snapshot) {
      this.next = Math.max(this.match + 1, this.pendingSnapshot + 1);
    } else {
      this.next = this.match + 1;
    }
    this.state = ProgressState.Probe;
    this.pendingSnapshot = 0;
    this.probeSent = false;
    this.inflights.reset();
  }

  becomeReplicate(): void {
    this.state = ProgressState.Replicate;
    this.next = this.match + 1;
    this.pendingSnapshot = 0;
    this.probeSent = false;
    this.inflights.reset();
  }

  becomeSnapshot(index: number): void {
    this.state = ProgressState.Snapshot;
    this.pendingSnapshot = index;
    this.probeSent = false;
    this.inflights.reset();
  }

  /** A successful acknowledgement of `index`; false when it tells nothing new. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (this.match < index) {
      this.match = index;
      this.probeSent = false;
      updated = true;
    }
    if (this.next < index + 1) this.next = index + 1;
    return updated;
  }

  /**
   * A rejection of the Append whose previous index was `rejected`; `hint` is the follower's guess of
   * where the logs may agree. False when the rejection is stale (an answer to an older message).
   */
  /**
   * The follower no longer holds entries it acknowledged (its disk lost them; Raft's model assumes it
   * never does): start over from what it still has. The commit index never moves back, so lowering match
   * costs only the re-send. A stale rejection that merely looks like this is repaired by the next answer.
   */
  lostEntries(hint: number): void {
    assert(hint < this.match, "lostEntries with a hint at or above match");
    this.match = hint;
    this.state = ProgressState.Probe;
    this.next = hint + 1;
    this.pendingSnapshot = 0;
    this.probeSent = false;
    this.inflights.reset();
  }

  maybeDecrTo(rejected: number, hint: number): boolean {
    if (this.state === ProgressState.Replicate) {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, hint + 1), this.match + 1);
    assert(this.next >= 1, "next index below 1");
    this.probeSent = false;
    return true;
  }

  isPaused(): boolean {
    switch (this.state) {
      case ProgressState.Probe:
        return this.probeSent;
      case ProgressState.Replicate:
        return this.inflights.full();
      case ProgressState.Snapshot:
        return true;
    }
  }
}
