// RaftNode: the driver-facing surface of the core. It wraps the state machine (raft.ts) with the
// ready/advance contract documented on `Ready` in types.ts: whatever a message promises (a vote, an
// acknowledged entry, a term) is in the persisted part of the same or an earlier ready.
import { assert } from "./assert";
import { confChangeProblem, encodeConfChange } from "./confchange";
import type { ProgressState } from "./progress";
import { Raft } from "./raft";
import {
  EntryType,
  MessageType,
  NONE,
  ProposalError,
  Role,
  type ConfChange,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type NodeId,
  type RaftConfig,
  type Ready,
  type RestartState,
  type SnapshotMeta,
  type SoftState,
  type VoteFloor,
} from "./types";

export interface PeerStatus {
  id: NodeId;
  match: number;
  next: number;
  state: ProgressState;
  isLearner: boolean;
}

export interface RaftStatus {
  id: NodeId;
  role: Role;
  term: number;
  vote: NodeId;
  leader: NodeId;
  commitIndex: number;
  lastIndex: number;
  appliedIndex: number;
  firstIndex: number;
  conf: ConfState;
  /** Only on a leader. */
  progress?: PeerStatus[];
}

/** Upper bound on entries in one Append the core accepts from the wire (anything larger is malformed). */
const MAX_ENTRIES_PER_MESSAGE = 1 << 16;

export class RaftNode {
  private readonly r: Raft;
  private prevSoft: SoftState;
  private prevHard: HardState;
  /** Readies handed out and not yet advanced, oldest first (see ready()). */
  private outstanding: Ready[] = [];
  /** Messages dropped because they were malformed or addressed elsewhere. */
  droppedMessages = 0;

  constructor(cfg: RaftConfig, restart?: RestartState) {
    this.r = new Raft(cfg, restart);
    this.prevSoft = { leader: this.r.leader, role: this.r.role };
    this.prevHard = restart !== undefined ? { ...restart.hardState } : { term: 0, vote: NONE, commit: 0 };
  }

  get id(): NodeId {
    return this.r.id;
  }
  get role(): Role {
    return this.r.role;
  }
  get term(): number {
    return this.r.term;
  }
  get vote(): NodeId {
    return this.r.vote;
  }
  get leader(): NodeId {
    return this.r.leader;
  }
  get commitIndex(): number {
    return this.r.log.committed;
  }
  get lastIndex(): number {
    return this.r.log.lastIndex;
  }
  get firstIndex(): number {
    return this.r.log.firstIndex;
  }
  get appliedIndex(): number {
    return this.r.log.applied;
  }
  /** See VoteFloor (types.ts); undefined when there is none or once it is settled. */
  get voteFloor(): VoteFloor | undefined {
    return this.r.voteFloor;
  }
  /** The current membership (frozen: it is shared, not copied). */
  get conf(): ConfState {
    return this.r.conf;
  }

  /** The term of the entry at `index`, undefined when compacted or beyond the end. */
  termAt(index: number): number | undefined {
    return this.r.log.term(index);
  }

  /** The membership as of `index` (not compacted): what a snapshot taken at `index` must carry. */
  confAt(index: number): ConfState {
    const c = this.r.confAt(index);
    return { voters: [...c.voters], learners: [...c.learners] };
  }

  /** The entry at `index` (read-only: it is shared with the core). */
  entryAt(index: number): Entry | undefined {
    return this.r.log.entry(index);
  }

  /** Leader: each member's match index, without building a status (called for many groups often). */
  forEachMatch(f: (id: NodeId, match: number) => void): void {
    if (this.r.role !== Role.Leader) return;
    for (const [id, pr] of this.r.progress) f(id, pr.match);
  }

  status(): RaftStatus {
    const s: RaftStatus = {
      id: this.id,
      role: this.role,
      term: this.term,
      vote: this.vote,
      leader: this.leader,
      commitIndex: this.commitIndex,
      lastIndex: this.lastIndex,
      appliedIndex: this.appliedIndex,
      firstIndex: this.firstIndex,
      conf: this.conf,
    };
    if (this.r.role === Role.Leader) {
      s.progress = [...this.r.progress].map(([id, pr]) => ({
        id,
        match: pr.match,
        next: pr.next,
        state: pr.state,
        isLearner: pr.isLearner,
      }));
    }
    return s;
  }

  tick(): void {
    this.r.tick();
  }

  /** Leader with nothing in flight: see quiesce(). */
  quiescable(): boolean {
    return this.r.quiescable();
  }

  /**
   * Puts an idle group to sleep: sends each member a last heartbeat marked `quiesce` with the commit
   * index. The core itself never sleeps; the driver stops calling tick() for the group (no heartbeats
   * from the leader, no election timer on followers) and starts again when anything happens: a proposal,
   * a message other than that heartbeat's answer, or, on a follower, the leader's node falling silent.
   * Returns false (and sends nothing) when the group is not idle.
   */
  quiesce(): boolean {
    if (!this.r.quiescable()) return false;
    this.r.bcastQuiesce();
    return true;
  }

  /**
   * A follower may sleep on a leader's quiesce heartbeat when it follows that leader in that term and
   * holds exactly the committed log (a stale replica keeps its timer, so it catches up or elects).
   */
  canSleepOn(m: Message): boolean {
    const r = this.r;
    return (
      m.type === MessageType.Heartbeat && m.quiesce === true && r.role === Role.Follower &&
      m.term === r.term && m.from === r.leader && r.log.committed === r.log.lastIndex && m.commit === r.log.lastIndex
    );
  }

  /** Start an election now (pre-vote first when enabled). */
  campaign(): void {
    this.r.hup(false);
  }

  step(m: Message): void {
    if (!wellFormed(m, this.r.id)) {
      this.droppedMessages++;
      return;
    }
    this.r.step(m);
  }

  /** Append one entry; returns its index. */
  propose(data: Uint8Array): number {
    return this.proposeBatch([data]);
  }

  /** Append several entries with one round of Appends; returns the index of the last. */
  proposeBatch(data: readonly Uint8Array[]): number {
    assert(data.length > 0, "empty proposal batch");
    this.checkCanPropose(data.reduce((n, d) => n + d.length, 0));
    const entries: Entry[] = data.map((d) => ({ term: 0, index: 0, type: EntryType.Normal, data: d }));
    const last = this.r.appendEntries(entries);
    this.r.bcastAppend();
    return last;
  }

  /**
   * Propose a membership change; returns its index. It takes effect when committed, and a second one
   * is refused until then. A leader that removes itself steps down once the removal commits.
   */
  proposeConfChange(cc: ConfChange): number {
    this.checkCanPropose(0);
    const r = this.r;
    if (r.pendingConfIndex > r.log.committed) throw new ProposalError("conf-change-pending", r.leader);
    const problem = confChangeProblem(r.conf, cc);
    if (problem !== undefined) throw new ProposalError("invalid-conf-change", r.leader);
    const index = r.appendEntries([{ term: 0, index: 0, type: EntryType.ConfChange, data: encodeConfChange(cc) }]);
    r.pendingConfIndex = index;
    r.bcastAppend();
    return index;
  }

  private checkCanPropose(bytes: number): void {
    const r = this.r;
    if (r.role !== Role.Leader) throw new ProposalError("not-leader", r.leader);
    if (r.leadTransferee !== NONE) throw new ProposalError("transfer-in-progress", r.leader);
    if (bytes > 0 && r.uncommittedBytes + bytes > r.maxUncommittedBytes && r.uncommittedBytes > 0) {
      throw new ProposalError("too-many-uncommitted", r.leader);
    }
  }

  /** Leader: a transfer of leadership is underway (proposals are refused until it ends or lapses). */
  get transferring(): boolean {
    return this.r.role === Role.Leader && this.r.leadTransferee !== NONE;
  }

  /**
   * Stop leading (or campaigning) at once, with term and vote unchanged: for a driver that can no longer
   * persist anything. Always safe: a follower of the current term promises nothing new.
   */
  stepDown(): void {
    if (this.r.role !== Role.Follower) this.r.becomeFollower(this.r.term, NONE);
  }

  /** Move leadership to `to`. On a follower, the request is forwarded to the leader. */
  transferLeadership(to: NodeId): void {
    this.r.transferLeadership(to);
  }

  reportSnapshot(to: NodeId, ok: boolean): void {
    this.r.reportSnapshot(to, ok);
  }

  reportUnreachable(to: NodeId): void {
    this.r.reportUnreachable(to);
  }

  /**
   * The driver's state machine holds everything up to `index` (<= appliedIndex): drop those entries
   * and remember the compaction point, with the membership as of `index`, to send to lagging peers.
   * Returns that point: the driver stores it as its snapshot (what RestartState.snapshot expects).
   */
  compact(index: number, data: Uint8Array): SnapshotMeta {
    const log = this.r.log;
    if (index <= log.snapshot.index) return log.snapshot;
    assert(index <= log.applied, () => `compact(${index}) beyond applied ${log.applied}`);
    const term = log.term(index);
    assert(term !== undefined, "compacting an index that is not in the log");
    const meta: SnapshotMeta = { index, term, conf: this.r.confAt(index), data };
    log.compact(meta);
    return meta;
  }

  private softState(): SoftState {
    return { leader: this.r.leader, role: this.r.role };
  }

  private hardState(): HardState {
    return { term: this.r.term, vote: this.r.vote, commit: this.r.log.committed };
  }

  hasReady(): boolean {
    const r = this.r;
    const log = r.log;
    // A snapshot goes out in a ready of its own, after every earlier one was advanced, and nothing
    // follows it until it is advanced: installing it replaces the whole state machine.
    if (log.pendingSnapshot !== undefined && this.outstanding.length > 0) return false;
    return (
      r.msgs.length > 0 ||
      log.hasEntriesToWrite() ||
      log.pendingSnapshot !== undefined ||
      log.committed > log.applying ||
      r.leader !== this.prevSoft.leader ||
      r.role !== this.prevSoft.role ||
      r.term !== this.prevHard.term ||
      r.vote !== this.prevHard.vote ||
      log.committed !== this.prevHard.commit
    );
  }

  /**
   * The next batch of work. Readies may overlap: a driver can take the next one while the previous one's
   * fsync is in flight, as long as it completes them in order (persist, send the messages that wait for
   * persistence, advance) and advances them in the order they were handed out. Each holds only what the
   * earlier ones did not: the entries after those in progress, the committed entries after those being
   * applied, the messages produced since.
   */
  ready(): Ready {
    const r = this.r;
    const log = r.log;
    assert(log.pendingSnapshot === undefined || this.outstanding.length === 0, "a snapshot ready must go out alone");
    const rd: Ready = {
      entries: log.takeEntriesToWrite(),
      messages: r.msgs,
      committedEntries: log.takeEntriesToApply(),
    };
    r.msgs = [];
    if (log.pendingSnapshot !== undefined) rd.snapshot = log.pendingSnapshot;
    const soft = this.softState();
    if (soft.leader !== this.prevSoft.leader || soft.role !== this.prevSoft.role) {
      rd.softState = soft;
      this.prevSoft = soft;
    }
    const hard = this.hardState();
    if (hard.term !== this.prevHard.term || hard.vote !== this.prevHard.vote || hard.commit !== this.prevHard.commit) {
      assert(hard.term >= this.prevHard.term, "persisted term would go back");
      assert(hard.commit >= this.prevHard.commit, "persisted commit would go back");
      rd.hardState = hard;
      this.prevHard = hard;
    }
    this.outstanding.push(rd);
    return rd;
  }

  /** Readies handed out and not yet advanced. */
  get readiesInFlight(): number {
    return this.outstanding.length;
  }

  /** The driver persisted, sent and applied `rd` (and every ready handed out before it). */
  advance(rd: Ready): void {
    assert(rd === this.outstanding[0], "advance() with a ready that is not the oldest one handed out");
    this.outstanding.shift();
    const log = this.r.log;
    if (rd.snapshot !== undefined && log.pendingSnapshot === rd.snapshot) log.pendingSnapshot = undefined;
    const lastEntry = rd.entries[rd.entries.length - 1];
    if (lastEntry !== undefined) log.stableTo(lastEntry.index, lastEntry.term);
    const lastApplied = rd.committedEntries[rd.committedEntries.length - 1];
    if (lastApplied !== undefined && lastApplied.index > log.applied) {
      assert(lastApplied.index <= log.committed, "applied beyond commit");
      log.applied = lastApplied.index;
    }
    this.r.onPersisted();
  }
}

function wellFormed(m: Message, self: NodeId): boolean {
  if (m.to !== self || m.from === NONE || m.from === self) return false;
  if (!Number.isInteger(m.term) || m.term < 0 || !Number.isInteger(m.index) || m.index < 0) return false;
  if (m.type < MessageType.Vote || m.type > MessageType.TransferLeader) return false;
  if (m.entries.length > MAX_ENTRIES_PER_MESSAGE) return false;
  let prevTerm = m.logTerm;
  for (let i = 0; i < m.entries.length; i++) {
    const e = m.entries[i] as Entry;
    if (e.index !== m.index + 1 + i || e.term < prevTerm || e.term > m.term) return false;
    prevTerm = e.term;
  }
  if (m.type === MessageType.Snapshot && m.snapshot === undefined) return false;
  return true;
}
