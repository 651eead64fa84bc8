// The shapes the Raft core exchanges with whoever drives it (a broker, a sentinel, the simulator).
// The core is pure: no I/O, no timers, no clock, no randomness of its own. The driver calls tick() at a
// fixed interval, step() for every message received, and drains ready() after every call.

export type NodeId = number; // 0 is "none"
export const NONE: NodeId = 0;

export enum Role {
  Follower = "follower",
  PreCandidate = "pre-candidate",
  Candidate = "candidate",
  Leader = "leader",
}

export enum EntryType {
  Normal = 0,
  ConfChange = 1,
  Noop = 2, // the first entry of a new leader's term, so earlier terms can commit (Raft §5.4.2)
}

export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  data: Uint8Array; // opaque to the core; for ConfChange, encodeConfChange()
}

/** One membership change at a time; the core refuses a second while one is uncommitted. */
export type ConfChange =
  | { type: "add-learner"; node: NodeId }
  | { type: "promote"; node: NodeId } // learner -> voter
  | { type: "remove"; node: NodeId }; // voter or learner

export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
}

/** What must be durable before messages that depend on it are sent (term, vote, commit). */
export interface HardState {
  term: number;
  vote: NodeId;
  commit: number;
}

/** Everything before and at `index` has been compacted; the state machine (fragments) holds it. */
export interface SnapshotMeta {
  index: number;
  term: number;
  conf: ConfState;
  data: Uint8Array; // small application state (e.g. next offset, producer table); bulk data moves elsewhere
}

export enum MessageType {
  Vote = 1,
  VoteResponse = 2,
  PreVote = 3,
  PreVoteResponse = 4,
  Append = 5,
  AppendResponse = 6,
  Heartbeat = 7,
  HeartbeatResponse = 8,
  Snapshot = 9,
  SnapshotStatus = 10,
  TimeoutNow = 11,
  TransferLeader = 12, // `index` carries the transferee's id (`from` stays the sender)
}

/** Numbering matches RaftMessageType in proto/goulette.proto so the wire maps 1:1. */
export interface Message {
  type: MessageType;
  from: NodeId;
  to: NodeId;
  term: number;
  logTerm: number; // Append: term of entry at `index`; Vote: candidate's last log term
  index: number; // Append: index preceding `entries`; Vote: candidate's last index; response: match/last index
  commit: number;
  reject: boolean;
  rejectHint: number; // AppendResponse reject: follower's hint index for fast backtracking
  hintTerm: number; // AppendResponse reject: term of the entry at rejectHint (conflict term)
  entries: Entry[];
  snapshot?: SnapshotMeta;
  context?: Uint8Array;
  /**
   * Heartbeat only: the group is idle and every member holds the whole log, so the leader stops sending
   * heartbeats until something changes. The driver decides what sleeping means (see RaftNode.quiesce).
   */
  quiesce?: boolean;
}

export interface SoftState {
  leader: NodeId;
  role: Role;
}

/**
 * A batch of work for the driver, in this order:
 *   1. persist `snapshot` (if any), then `entries` (which may overwrite a suffix: every stored entry with
 *      index >= entries[0].index is replaced), then `hardState` (if any) — all durable before step 2;
 *   2. send `messages`;
 *   3. apply `committedEntries` in order;
 *   4. call advance(ready).
 * Messages are only released once what they promise is in the same or an earlier ready's persisted part.
 * Readies may overlap (see RaftNode.ready and the README's "Driving a node"): then steps 1-4 of each
 * complete in the order they were handed out, and Append, Heartbeat and Snapshot messages and committed
 * entries may go ahead of step 1.
 */
export interface Ready {
  softState?: SoftState; // present when leader or role changed
  hardState?: HardState; // present when changed
  entries: Entry[];
  snapshot?: SnapshotMeta; // install (follower received one): state machine must move to it
  messages: Message[];
  committedEntries: Entry[];
}

export interface RaftConfig {
  id: NodeId;
  /** Initial membership when the log is empty (a new group); ignored when restarting from storage. */
  voters: NodeId[];
  learners?: NodeId[];
  electionTicks: number; // randomized in [electionTicks, 2*electionTicks)
  heartbeatTicks: number;
  seed: number; // seeds the election-timeout PRNG
  preVote?: boolean; // default true
  checkQuorum?: boolean; // default true
  maxInflightMsgs?: number; // pipelined appends per follower, default 256
  maxMsgBytes?: number; // byte limit of entries per Append, default 1 MiB
  maxUncommittedBytes?: number; // propose() refuses beyond this, default 64 MiB
}

/** What the driver recovered from disk when restarting a node. */
export interface RestartState {
  hardState: HardState;
  snapshot?: SnapshotMeta; // last compaction point (entries before are gone)
  entries: Entry[]; // durable entries after the snapshot, contiguous
  conf?: ConfState; // latest membership if entries do not hold it (taken from snapshot otherwise)
  /** Index the driver's state machine already holds (default snapshot.index); later committed entries are re-delivered. */
  applied?: number;
  /** See VoteFloor: the driver's storage lost the newest entry (or snapshot) it had written. */
  voteFloor?: VoteFloor;
}

/**
 * An entry (or snapshot end) this node wrote, may have acknowledged, and no longer holds: its storage lost
 * the newest record (a torn or cut tail), and whether that record had been made durable, and so counted
 * towards a commit, cannot be told afterwards. Until that is settled the node votes as if it still held
 * the entry: it grants votes only to logs at least as up to date as (term, index), and does not stand for
 * election while its own log is behind it (pre-votes still go out: they show the others its log).
 * Settled, and dropped, when the commit index reaches `index`, or when every other voter has asked for a
 * vote in a later term with a log behind it: then no replica holds the entry, so it never committed
 * (a majority held it durably if it did, and losing it on every one of them is more than a minority's
 * damage).
 */
export interface VoteFloor {
  term: number;
  index: number;
  /**
   * When the node lost entries at several restarts before the floor settled: the earliest of them (absent:
   * the floor's own entry). Evidence must show a log behind this one, since a voter whose log reaches it
   * may hold an earlier lost entry that committed even when it lacks the latest.
   */
  lowest?: { term: number; index: number };
}

/**
 * Combines the floor kept from an earlier loss with a new one: votes go only to logs reaching the later of
 * the two, and evidence must be behind the earlier (see VoteFloor.lowest). Either may be absent.
 */
export function laterVoteFloor(a: VoteFloor | undefined, b: VoteFloor | undefined): VoteFloor | undefined {
  if (a === undefined || b === undefined) return a ?? b;
  const later = entryBefore(a, b) ? b : a;
  const la = a.lowest ?? { term: a.term, index: a.index };
  const lb = b.lowest ?? { term: b.term, index: b.index };
  const lowest = entryBefore(la, lb) ? la : lb;
  const floor: VoteFloor = { term: later.term, index: later.index };
  if (entryBefore(lowest, floor)) floor.lowest = { term: lowest.term, index: lowest.index };
  return floor;
}

/** Raft's log order: whether the entry (or log end) `a` comes before `b` (term first, then index). */
export function entryBefore(a: { term: number; index: number }, b: { term: number; index: number }): boolean {
  return a.term < b.term || (a.term === b.term && a.index < b.index);
}

/** Whether two floors (either may be absent) say the same. */
export function sameVoteFloor(a: VoteFloor | undefined, b: VoteFloor | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.term === b.term && a.index === b.index && a.lowest?.term === b.lowest?.term && a.lowest?.index === b.lowest?.index;
}

/**
 * The hard state to restart with when storage lost a newer hard state record of term `lostTerm` (a torn
 * tail): that record may have carried a vote which already left, so the node must not vote again in that
 * term. It takes the term and records a vote for itself, which refuses every other candidate of the term
 * and asks for nothing (it only campaigns in a later term). Unchanged when the lost record cannot have
 * carried a vote this state does not already hold.
 */
export function hardStateAfterLostVote(hs: HardState, lostTerm: number | undefined, self: NodeId): HardState {
  if (lostTerm === undefined || lostTerm < hs.term) return hs;
  if (lostTerm > hs.term) return { term: lostTerm, vote: self, commit: hs.commit };
  return hs.vote === NONE ? { ...hs, vote: self } : hs; // a vote once cast in a term never changes
}

export class ProposalError extends Error {
  constructor(
    readonly reason:
      | "not-leader"
      | "transfer-in-progress"
      | "conf-change-pending"
      | "too-many-uncommitted"
      | "invalid-conf-change",
    readonly leader: NodeId,
  ) {
    super(`proposal refused: ${reason}`);
  }
}
