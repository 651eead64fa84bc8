// The Raft state machine proper: terms, roles, votes, replication bookkeeping. Pure and synchronous:
// it reacts to tick() and step(), and queues outgoing messages in `msgs`. The role-specific reactions
// live in step-leader.ts, step-candidate.ts and step-follower.ts; node.ts wraps this with the
// ready/advance persistence contract.
import { assert } from "./assert";
import { applyConfChange, decodeConfChange, encodeConfChange, frozenConf } from "./confchange";
import { RaftLog } from "./log";
import { Prng, mixSeed } from "./prng";
import { Progress, ProgressState } from "./progress";
import { committedIndex, quorumActive, voteOutcome, type VoteOutcome } from "./quorum";
import { stepCandidate } from "./step-candidate";
import { stepFollower } from "./step-follower";
import { stepLeader } from "./step-leader";
import {
  EntryType,
  MessageType,
  NONE,
  Role,
  entryBefore,
  type ConfState,
  type Entry,
  type Message,
  type NodeId,
  type RaftConfig,
  type RestartState,
  type SnapshotMeta,
  type VoteFloor,
} from "./types";

/** Marks a Vote sent because of a leader transfer: voters then ignore their leader lease. */
export const TRANSFER_CONTEXT = new Uint8Array([1]);
const EMPTY = new Uint8Array(0);

export function isTransferContext(ctx: Uint8Array | undefined): boolean {
  return ctx !== undefined && ctx.length === 1 && ctx[0] === 1;
}

/** Raft's "at least as up to date" order on (last term, last index). */
function logAtLeast(term: number, index: number, than: { term: number; index: number }): boolean {
  return !entryBefore({ term, index }, than);
}

export function emptyConf(): ConfState {
  return frozenConf([], []);
}

/**
 * A brand-new group writes its initial membership into the log as committed ConfChange entries at
 * term 1, identically on every founding member. A node that joins later starts empty and learns the
 * membership by replicating these entries (or a snapshot), so there is no out-of-band configuration.
 */
export function bootstrapEntries(voters: readonly NodeId[], learners: readonly NodeId[]): Entry[] {
  const out: Entry[] = [];
  const add = (data: Uint8Array) => out.push({ term: 1, index: out.length + 1, type: EntryType.ConfChange, data });
  for (const v of [...voters].sort((a, b) => a - b)) {
    add(encodeConfChange({ type: "add-learner", node: v }));
    add(encodeConfChange({ type: "promote", node: v }));
  }
  for (const l of [...learners].sort((a, b) => a - b)) add(encodeConfChange({ type: "add-learner", node: l }));
  return out;
}

export class Raft {
  readonly id: NodeId;
  term = 0;
  vote: NodeId = NONE;
  leader: NodeId = NONE;
  role: Role = Role.Follower;
  readonly log: RaftLog;
  private confState!: ConfState;
  /**
   * Whether we are among conf's voters, kept with conf: every awake follower asks at every tick, and the
   * conf's arrays are frozen, where JSC's `includes` is several times slower (at 1,000 groups under load
   * it was a tenth of a broker's CPU).
   */
  private selfVoter = false;
  readonly progress = new Map<NodeId, Progress>();
  readonly votes = new Map<NodeId, boolean>();
  msgs: Message[] = [];

  electionElapsed = 0;
  heartbeatElapsed = 0;
  randomizedElectionTimeout = 0;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly maxInflightMsgs: number;
  readonly maxMsgBytes: number;
  readonly maxUncommittedBytes: number;
  uncommittedBytes = 0;
  leadTransferee: NodeId = NONE;
  /** A ConfChange at or below this index may still be uncommitted: no second change until it commits. */
  pendingConfIndex = 0;
  /** See VoteFloor (types.ts); undefined when there is none or once it is settled. */
  voteFloor: VoteFloor | undefined;
  /** Voters that asked for a vote, in a term after the floor's, with a log behind it. */
  private readonly floorEvidence = new Set<NodeId>();
  /**
   * Ticks left during which we may stand although removed from the membership: a member of an older one
   * (it has not applied our removal yet) asked us for a vote. We then stand (promotable) under our
   * membership, without counting ourselves; winning, we lead once and afterCommit hands over and steps
   * down as soon as an entry of our term commits, so entries only we still hold reach the others; losing,
   * our request shows our log, which a replica holding a vote floor may need as evidence. Without this,
   * when the others cannot elect without us (a replica that lost its newest entries keeps a floor for
   * them), the group would stall. Standing is as safe as for any member whose membership is behind the
   * log's: votes come from a majority of our membership, and one change at a time keeps its majorities
   * overlapping every later one's. The count runs out unless such requests keep coming.
   */
  private caretakerTicks = 0;
  /** This candidacy began while we were not a member (as a caretaker). */
  private standingAsCaretaker = false;
  private readonly prng: Prng;

  constructor(cfg: RaftConfig, restart?: RestartState) {
    assert(Number.isInteger(cfg.id) && cfg.id > 0, "node id must be a positive integer");
    assert(cfg.heartbeatTicks >= 1 && cfg.electionTicks > cfg.heartbeatTicks, "need electionTicks > heartbeatTicks >= 1");
    this.id = cfg.id;
    this.electionTicks = cfg.electionTicks;
    this.heartbeatTicks = cfg.heartbeatTicks;
    this.preVote = cfg.preVote ?? true;
    this.checkQuorum = cfg.checkQuorum ?? true;
    this.maxInflightMsgs = cfg.maxInflightMsgs ?? 256;
    this.maxMsgBytes = cfg.maxMsgBytes ?? 1 << 20;
    this.maxUncommittedBytes = cfg.maxUncommittedBytes ?? 64 << 20;
    this.prng = new Prng(mixSeed(cfg.seed, cfg.id));

    if (restart !== undefined) {
      const snap: SnapshotMeta = restart.snapshot ?? { index: 0, term: 0, conf: restart.conf ?? emptyConf(), data: EMPTY };
      const hs = restart.hardState;
      const lastIndex = snap.index + restart.entries.length;
      assert(hs.commit >= snap.index && hs.commit <= lastIndex, "restart commit outside the stored log");
      const applied = Math.max(snap.index, Math.min(restart.applied ?? snap.index, hs.commit));
      this.log = new RaftLog(snap, restart.entries.slice(), hs.commit, applied, lastIndex);
      this.term = hs.term;
      this.vote = hs.vote;
      assert(this.log.lastTerm() <= this.term, "stored entries are newer than the stored term");
      this.conf = this.confAt(hs.commit);
      if (restart.voteFloor !== undefined) {
        this.voteFloor = structuredClone(restart.voteFloor);
        this.maybeSettleFloor(); // alone in the group, nobody else could hold the entry
      }
    } else {
      const snap: SnapshotMeta = { index: 0, term: 0, conf: emptyConf(), data: EMPTY };
      const boot = cfg.voters.length > 0 ? bootstrapEntries(cfg.voters, cfg.learners ?? []) : [];
      this.log = new RaftLog(snap, boot, boot.length, 0, 0);
      this.term = boot.length > 0 ? 1 : 0;
      this.conf = this.confAt(boot.length);
    }
    this.becomeFollower(this.term, NONE);
  }

  /** The membership as of `index` (which must not be compacted away): snapshot conf plus later changes. */
  confAt(index: number): ConfState {
    let conf = frozenConf(this.log.snapshot.conf.voters, this.log.snapshot.conf.learners);
    assert(index >= this.log.snapshot.index, "conf asked for a compacted index");
    for (let i = this.log.firstIndex; i <= index; i++) {
      const e = this.log.entry(i) as Entry;
      if (e.type === EntryType.ConfChange) conf = applyConfChange(conf, decodeConfChange(e.data));
    }
    return conf;
  }

  get conf(): ConfState {
    return this.confState;
  }

  set conf(c: ConfState) {
    this.confState = c;
    this.selfVoter = c.voters.includes(this.id);
  }

  /** A voter of our own membership (a removed node is not, whatever others still believe). */
  isVoter(): boolean {
    return this.selfVoter;
  }

  promotable(): boolean {
    // A caretaker with no membership at all (it lost the entries holding it) asks no one: its candidacy
    // could never be won or show its log, and only raised its term past the real candidates' (each of
    // their requests renewing its standing), so their requests met a term it had already voted in.
    return (this.caretakerTicks > 0 && this.conf.voters.length > 0) || this.isVoter();
  }

  /** Our own log is behind the vote floor: standing for election on it could let a log without the entry win. */
  behindFloor(): boolean {
    return this.voteFloor !== undefined && !logAtLeast(this.log.lastTerm(), this.log.lastIndex, this.voteFloor);
  }

  private maybeSettleFloor(): void {
    const f = this.voteFloor;
    if (f === undefined) return;
    // Evidence needs a known membership: a node that lost the entries holding it (no snapshot, no entries)
    // has none, and "every other voter" of no voters would settle the floor at once.
    const evidence = this.conf.voters.length > 0 && this.conf.voters.every((v) => v === this.id || this.floorEvidence.has(v));
    if (this.log.committed >= f.index || evidence) {
      this.voteFloor = undefined;
      this.floorEvidence.clear();
    }
  }

  // ---- role transitions ----

  private reset(term: number): void {
    assert(term >= this.term, () => `term must never go back: ${this.term} -> ${term}`);
    if (term !== this.term) {
      this.term = term;
      this.vote = NONE;
    }
    this.leader = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout = this.electionTicks + this.prng.int(this.electionTicks);
    this.leadTransferee = NONE;
    this.votes.clear();
    this.progress.clear();
    this.uncommittedBytes = 0;
    this.pendingConfIndex = 0;
  }

  becomeFollower(term: number, leader: NodeId): void {
    this.reset(term);
    this.leader = leader;
    this.role = Role.Follower;
    if (leader !== NONE) this.caretakerTicks = 0; // someone leads: the others are no longer stuck
  }

  becomePreCandidate(): void {
    assert(this.role !== Role.Leader, "a leader cannot become pre-candidate");
    // Pre-vote changes neither term nor vote: losing it leaves no trace.
    this.votes.clear();
    this.leader = NONE;
    this.role = Role.PreCandidate;
  }

  becomeCandidate(): void {
    assert(this.role !== Role.Leader, "a leader cannot become candidate");
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = Role.Candidate;
  }

  becomeLeader(): void {
    assert(this.role === Role.Candidate, "only a candidate becomes leader");
    this.reset(this.term);
    this.leader = this.id;
    this.role = Role.Leader;
    const next = this.log.lastIndex + 1;
    for (const v of this.conf.voters) this.progress.set(v, new Progress(next, this.maxInflightMsgs, false));
    for (const l of this.conf.learners) this.progress.set(l, new Progress(next, this.maxInflightMsgs, true));
    // A caretaker (removed, see caretakerTicks) leads without a place in the membership: no progress of
    // its own, so it never counts itself towards a majority.
    const self = this.progress.get(this.id);
    assert(self !== undefined || this.standingAsCaretaker, "a leader must be a voter, or a removed node asked to stand");
    this.caretakerTicks = 0;
    if (self !== undefined) {
      self.match = this.log.persisted;
      self.becomeReplicate();
    }
    // Any ConfChange in the uncommitted tail must commit before a new one is accepted.
    this.pendingConfIndex = this.log.lastIndex;
    this.appendEntries([{ term: 0, index: 0, type: EntryType.Noop, data: EMPTY }]);
  }

  // ---- elections ----

  tick(): void {
    if (this.role === Role.Leader) this.tickLeader();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.hup(false);
    }
    if (this.caretakerTicks > 0) this.caretakerTicks--;
  }

  private tickLeader(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTicks) {
      this.electionElapsed = 0;
      if (this.checkQuorum) {
        const active = quorumActive(this.conf.voters, (v) => v === this.id || this.progress.get(v)?.recentActive === true);
        for (const [id, pr] of this.progress) if (id !== this.id) pr.recentActive = false;
        if (!active) {
          this.becomeFollower(this.term, NONE);
          return;
        }
      }
      // A transfer that did not finish within an election timeout is abandoned.
      this.leadTransferee = NONE;
    }
    if (this.heartbeatElapsed >= this.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat();
    }
  }

  /** Start an election now (pre-vote first unless `transfer`). */
  hup(transfer: boolean): void {
    if (this.role === Role.Leader || !this.promotable()) return;
    this.standingAsCaretaker = !this.isVoter();
    // Behind our vote floor we cannot win a real vote, but a pre-vote still shows our log: a replica holding
    // the entries we lost may be a caretaker (removed, yet the only one able to lead), and our request is
    // what makes it stand. So we pre-vote then even where pre-vote is not otherwise used.
    if ((this.preVote || this.behindFloor()) && !transfer) this.campaign(MessageType.PreVote, false);
    else this.campaign(MessageType.Vote, transfer);
  }

  campaign(type: MessageType.PreVote | MessageType.Vote, transfer: boolean): void {
    if (type === MessageType.Vote && this.behindFloor()) {
      // Our own vote would count for a log that may lack an entry we acknowledged (VoteFloor). A won
      // pre-vote or a transfer ends here; the next timeout pre-votes again, which keeps showing our log.
      this.becomeFollower(this.term, NONE);
      return;
    }
    let voteTerm: number;
    if (type === MessageType.PreVote) {
      this.becomePreCandidate();
      voteTerm = this.term + 1;
    } else {
      this.becomeCandidate();
      voteTerm = this.term;
    }
    if (this.poll(this.id, true) === "won") {
      this.onElectionWon();
      return;
    }
    const lastIndex = this.log.lastIndex;
    const lastTerm = this.log.lastTerm();
    for (const v of this.conf.voters) {
      if (v === this.id) continue;
      const m = this.newMessage(type, v);
      m.term = voteTerm;
      m.index = lastIndex;
      m.logTerm = lastTerm;
      if (transfer) m.context = TRANSFER_CONTEXT;
      this.msgs.push(m);
    }
  }

  poll(from: NodeId, granted: boolean): VoteOutcome {
    if (!this.votes.has(from)) this.votes.set(from, granted);
    return voteOutcome(this.conf.voters, this.votes);
  }

  onElectionWon(): void {
    if (this.role === Role.PreCandidate) {
      this.campaign(MessageType.Vote, false);
    } else {
      this.becomeLeader();
      this.bcastAppend();
    }
  }

  // ---- messages ----

  newMessage(type: MessageType, to: NodeId): Message {
    return {
      type,
      from: this.id,
      to,
      term: this.term,
      logTerm: 0,
      index: 0,
      commit: 0,
      reject: false,
      rejectHint: 0,
      hintTerm: 0,
      entries: [],
    };
  }

  send(m: Message): void {
    this.msgs.push(m);
  }

  step(m: Message): void {
    if (m.term > this.term) {
      if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
        // Leader lease: while we hear from a leader, a disruptive candidate is ignored outright.
        const inLease = this.checkQuorum && this.leader !== NONE && this.electionElapsed < this.electionTicks;
        if (inLease && !isTransferContext(m.context)) return;
      }
      if (m.type === MessageType.PreVote) {
        // Answering a pre-vote never changes our term.
      } else if (m.type === MessageType.PreVoteResponse && !m.reject) {
        // Granted pre-votes carry the future term; the term moves when the real election starts.
      } else if (
        m.type === MessageType.Append ||
        m.type === MessageType.Heartbeat ||
        m.type === MessageType.Snapshot
      ) {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, NONE);
      }
    } else if (m.term < this.term) {
      if ((this.checkQuorum || this.preVote) && (m.type === MessageType.Append || m.type === MessageType.Heartbeat)) {
        // A stale leader (e.g. behind a partition that healed) learns our term and steps down; without
        // this, a node whose term ran ahead could never rejoin when pre-vote blocks its elections.
        this.send(this.newMessage(MessageType.AppendResponse, m.from));
      } else if (m.type === MessageType.PreVote || m.type === MessageType.Vote) {
        // A candidate behind our term learns it from the refusal (as in Raft's RequestVote reply). Without
        // it, one that never hears from a leader (a caretaker standing for a removed replica) campaigns on
        // in terms nobody answers, one per timeout, while the others' terms grow as fast.
        const r = this.newMessage(m.type === MessageType.PreVote ? MessageType.PreVoteResponse : MessageType.VoteResponse, m.from);
        r.reject = true;
        this.send(r);
      }
      return;
    }

    if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
      this.handleVoteRequest(m);
      return;
    }
    switch (this.role) {
      case Role.Leader:
        stepLeader(this, m);
        break;
      case Role.Candidate:
      case Role.PreCandidate:
        stepCandidate(this, m);
        break;
      case Role.Follower:
        stepFollower(this, m);
        break;
    }
  }

  private handleVoteRequest(m: Message): void {
    const pre = m.type === MessageType.PreVote;
    const canVote =
      this.vote === m.from ||
      (this.vote === NONE && this.leader === NONE) ||
      (pre && m.term > this.term);
    const respType = pre ? MessageType.PreVoteResponse : MessageType.VoteResponse;
    const r = this.newMessage(respType, m.from);
    const f = this.voteFloor;
    if (f !== undefined && m.term > f.term && !logAtLeast(m.logTerm, m.index, f.lowest ?? f)) {
      // A voter asking in a later term than the entry's does not hold it (see VoteFloor).
      this.floorEvidence.add(m.from);
      this.maybeSettleFloor();
    }
    if (this.role !== Role.Leader && !this.isVoter()) this.caretakerTicks = 2 * this.electionTicks;
    const aboveFloor = this.voteFloor === undefined || logAtLeast(m.logTerm, m.index, this.voteFloor);
    if (canVote && aboveFloor && this.log.isUpToDate(m.index, m.logTerm)) {
      r.term = m.term;
      if (!pre) {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      r.reject = true;
    }
    this.send(r);
  }

  // ---- follower side of replication ----

  handleAppend(m: Message): void {
    assert(this.role !== Role.Leader, "a leader never takes entries from another node: it would overwrite its own log");
    const r = this.newMessage(MessageType.AppendResponse, m.from);
    if (m.index < this.log.committed) {
      r.index = this.log.committed;
      this.send(r);
      return;
    }
    const lastNew = this.log.tryAppend(m.index, m.logTerm, m.entries);
    if (lastNew >= 0) {
      this.commitTo(Math.min(m.commit, lastNew));
      r.index = lastNew;
    } else {
      const [hintIndex, hintTerm] = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex), m.logTerm);
      r.reject = true;
      r.index = m.index;
      r.rejectHint = hintIndex;
      r.hintTerm = hintTerm;
    }
    this.send(r);
  }

  handleHeartbeat(m: Message): void {
    // The leader sends min(match, commit), so everything up to it matches the leader's log. It can only
    // exceed our last index if our disk lost acknowledged entries (or the replica let them go); then
    // commit what we still hold and tell the leader where our log ends, as the rejection of an append at
    // that commit index: it takes it as lost entries (step-leader) and sends the rest again. Waiting for
    // the next append's rejection instead left an idle group (a sleeping one above all) with a replica
    // that never caught up: the leader, believing it held everything, sent it nothing but heartbeats.
    this.commitTo(Math.min(m.commit, this.log.lastIndex));
    this.send(this.newMessage(MessageType.HeartbeatResponse, m.from));
    if (m.commit > this.log.lastIndex) {
      const r = this.newMessage(MessageType.AppendResponse, m.from);
      r.reject = true;
      r.index = m.commit;
      r.rejectHint = this.log.lastIndex;
      this.send(r);
    }
  }

  handleSnapshot(m: Message): void {
    const snap = m.snapshot;
    const r = this.newMessage(MessageType.AppendResponse, m.from);
    if (snap === undefined) return;
    if (snap.index <= this.log.committed) {
      r.index = this.log.committed;
    } else if (this.log.matchTerm(snap.index, snap.term)) {
      // We already hold that prefix: just fast-forward the commit.
      this.commitTo(snap.index);
      r.index = this.log.committed;
    } else {
      this.log.restore(snap);
      this.conf = frozenConf(snap.conf.voters, snap.conf.learners);
      r.index = snap.index;
      this.maybeSettleFloor();
    }
    this.send(r);
  }

  /** Advance the commit index and apply committed membership changes, in log order. */
  commitTo(index: number): void {
    const old = this.log.committed;
    if (index <= old) return;
    this.log.commitTo(index);
    for (let i = old + 1; i <= index; i++) {
      const e = this.log.entry(i) as Entry;
      if (this.role === Role.Leader) this.uncommittedBytes = Math.max(0, this.uncommittedBytes - e.data.length);
      if (e.type === EntryType.ConfChange) {
        this.conf = applyConfChange(this.conf, decodeConfChange(e.data));
        if (this.role === Role.Leader) this.syncProgressWithConf();
      }
    }
    this.maybeSettleFloor();
  }

  // ---- leader side of replication ----

  appendEntries(entries: Entry[]): number {
    assert(this.role === Role.Leader, "only the leader appends new entries");
    let index = this.log.lastIndex;
    for (const e of entries) {
      e.term = this.term;
      e.index = ++index;
      this.uncommittedBytes += e.data.length;
    }
    this.log.append(entries);
    return index;
  }

  syncProgressWithConf(): void {
    const members = new Set<NodeId>([...this.conf.voters, ...this.conf.learners]);
    for (const id of [...this.progress.keys()]) if (!members.has(id)) this.progress.delete(id);
    for (const id of members) {
      const learner = this.conf.learners.includes(id);
      const pr = this.progress.get(id);
      if (pr === undefined) {
        this.progress.set(id, new Progress(this.log.lastIndex + 1, this.maxInflightMsgs, learner));
      } else {
        pr.isLearner = learner;
      }
    }
    if (this.leadTransferee !== NONE && !this.conf.voters.includes(this.leadTransferee)) this.leadTransferee = NONE;
  }

  /** Commit what a majority has persisted, if it is of the current term (Raft §5.4.2). */
  maybeCommit(): boolean {
    const idx = committedIndex(this.conf.voters, (v) =>
      v === this.id ? this.log.persisted : (this.progress.get(v)?.match ?? 0),
    );
    if (idx > this.log.committed && this.log.term(idx) === this.term) {
      this.commitTo(idx);
      return true;
    }
    return false;
  }

  /** After the commit index moved: tell followers, and leave if our own removal just committed. */
  afterCommit(): void {
    while (this.maybeCommit()) {
      // a committed membership change can shrink the quorum and commit more
    }
    this.bcastAppend();
    if (!this.isVoter()) {
      // Removed: hand over to the most caught-up voter at once rather than waiting for a timeout.
      let best: NodeId = NONE;
      let bestMatch = -1;
      for (const v of this.conf.voters) {
        const pr = this.progress.get(v);
        if (pr !== undefined && pr.match > bestMatch) {
          best = v;
          bestMatch = pr.match;
        }
      }
      if (best !== NONE && bestMatch === this.log.lastIndex) this.send(this.newMessage(MessageType.TimeoutNow, best));
      this.becomeFollower(this.term, NONE);
    }
  }

  /** Send an Append (or Snapshot) to `to` if its progress allows. */
  sendAppend(to: NodeId, sendIfEmpty = true): boolean {
    const pr = this.progress.get(to);
    if (pr === undefined || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    if (prevTerm === undefined) {
      assert(prevIndex < this.log.snapshot.index, () => `progress next ${pr.next} beyond the log end ${this.log.lastIndex}`);
      const m = this.newMessage(MessageType.Snapshot, to);
      m.snapshot = this.log.snapshot;
      this.send(m);
      pr.becomeSnapshot(this.log.snapshot.index);
      return true;
    }
    const lastIndex = this.log.lastIndex;
    const entries = pr.next <= lastIndex ? this.log.slice(pr.next, lastIndex + 1, this.maxMsgBytes) : [];
    if (entries.length === 0 && !sendIfEmpty) return false;
    const m = this.newMessage(MessageType.Append, to);
    m.index = prevIndex;
    m.logTerm = prevTerm;
    m.entries = entries;
    m.commit = this.log.committed;
    this.send(m);
    if (pr.state === ProgressState.Replicate && entries.length > 0) {
      const last = (entries[entries.length - 1] as Entry).index;
      pr.next = last + 1;
      pr.inflights.add(last);
    } else if (pr.state === ProgressState.Probe) {
      pr.probeSent = true;
    }
    return true;
  }

  bcastAppend(): void {
    for (const id of this.progress.keys()) if (id !== this.id) this.sendAppend(id);
  }

  /**
   * A leader may let its group sleep when nothing is in flight: every entry is committed, every member
   * (learners too) holds all of them (so no membership change is pending either), the term's first entry
   * is committed, and no transfer is under way. Then a heartbeat with the commit index is all a follower
   * could still need.
   */
  quiescable(): boolean {
    if (this.role !== Role.Leader || this.leadTransferee !== NONE) return false;
    const last = this.log.lastIndex;
    if (this.log.committed !== last || this.log.lastTerm() !== this.term) return false;
    for (const [id, pr] of this.progress) {
      if (id !== this.id && (pr.match !== last || pr.state !== ProgressState.Replicate)) return false;
    }
    return true;
  }

  /** The last heartbeat before sleeping: carries the commit index (every member's match) and the mark. */
  bcastQuiesce(): void {
    assert(this.quiescable(), "quiesce while the group has work in flight");
    for (const id of this.progress.keys()) {
      if (id === this.id) continue;
      const m = this.newMessage(MessageType.Heartbeat, id);
      m.commit = this.log.committed;
      m.quiesce = true;
      this.send(m);
    }
    this.heartbeatElapsed = 0;
  }

  bcastHeartbeat(): void {
    for (const [id, pr] of this.progress) {
      if (id === this.id) continue;
      const m = this.newMessage(MessageType.Heartbeat, id);
      m.commit = Math.min(pr.match, this.log.committed);
      this.send(m);
    }
  }

  /** The driver persisted more of our log: as leader, our own match moved. */
  onPersisted(): void {
    if (this.role !== Role.Leader) return;
    const self = this.progress.get(this.id);
    if (self === undefined) return;
    if (self.maybeUpdate(this.log.persisted) && this.maybeCommit()) this.afterCommit();
  }

  transferLeadership(to: NodeId): void {
    if (this.role !== Role.Leader) {
      if (this.leader !== NONE) {
        const m = this.newMessage(MessageType.TransferLeader, this.leader);
        m.index = to;
        this.send(m);
      }
      return;
    }
    const pr = this.progress.get(to);
    if (to === this.id || pr === undefined || pr.isLearner) return;
    if (this.leadTransferee === to) return;
    this.leadTransferee = to;
    this.electionElapsed = 0;
    if (pr.match === this.log.lastIndex) this.send(this.newMessage(MessageType.TimeoutNow, to));
    else this.sendAppend(to);
  }

  reportSnapshot(to: NodeId, ok: boolean): void {
    if (this.role !== Role.Leader) return;
    const pr = this.progress.get(to);
    if (pr === undefined || pr.state !== ProgressState.Snapshot) return;
    if (!ok) pr.pendingSnapshot = 0;
    pr.becomeProbe();
    // Wait for a heartbeat answer before probing, so a failing peer is not flooded.
    pr.probeSent = true;
  }

  reportUnreachable(to: NodeId): void {
    if (this.role !== Role.Leader) return;
    const pr = this.progress.get(to);
    if (pr !== undefined && pr.state === ProgressState.Replicate) pr.becomeProbe();
  }
}
