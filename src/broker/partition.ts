// One partition on this broker: a Raft group bound to its partition log and its replicated state machine.
// The broker's pump (pump.ts) moves every group's ready() through the shared WAL; this class owns what
// happens per group: proposals waiting for their entry to apply, applying committed entries to the log,
// long-poll readers waiting for new data, and the status reported to the sentinel.
import { RaftNode } from "../raft/node";
import { EntryType, NONE, ProposalError, Role, type ConfChange, type Entry, type HardState, type NodeId, type SnapshotMeta } from "../raft/types";
import type { PartitionLog } from "../storage";
import { assert } from "./assert";
import { PartitionState, type ApplyResult } from "./partition-state";

export interface PartitionId {
  topic: string;
  partition: number;
  group: number;
}

interface PendingProposal {
  term: number;
  resolve(r: ApplyResult): void;
  reject(e: Error): void;
}

interface DataWaiter {
  offset: number;
  wake(): void;
}

export class NotLeaderError extends Error {
  constructor(readonly leader: NodeId) {
    super(leader ? `not the leader; broker ${leader} leads` : "not the leader; no leader is known yet");
  }
}

export class Partition {
  readonly pending = new Map<number, PendingProposal>();
  private waiters = new Set<DataWaiter>();
  /** Set while a snapshot (fragments from the leader) is being installed: the pump leaves this group alone. */
  installing = false;
  /** A storage fault: the partition stops accepting writes, keeps serving what it has. */
  failed: Error | undefined;
  /**
   * A failed replica that is no longer leader has left its group (Broker.leaveGroup): it neither steps,
   * ticks nor sends for it, as if crashed, and its WAL records were dropped. Until the broker restarts.
   */
  left = false;
  /** Highest index covered by a snapshot persisted in the WAL (and compacted from the Raft log). */
  snapshotIndex: number;
  appliedIndex: number;
  removed = false;
  checkpointing = false;
  /** The last hard state handed to the WAL (term and vote changes force an fdatasync, commit alone does not). */
  persistedHardState: HardState | undefined;
  checkpointedAtMs = Date.now();
  repairing = false;
  /** Leader: when each follower's snapshot transfer began (to offer it again if it goes unanswered). */
  readonly snapshotSince = new Map<NodeId, number>();
  /**
   * Ticks to skip before this replica may start an election: a new group created as a follower gives the
   * replica the sentinel hinted as leader time to win the first election (the others may not exist yet).
   */
  tickHoldoff = 0;
  /**
   * Set when this broker's WAL lost records in the middle (corruption, not a torn tail): the group may have
   * acknowledged entries it no longer holds, so it must not vote, on the strength of a log that is now too
   * short, until a leader brought it back to the leader's commit index.
   */
  voteFenced = false;
  /** The topic sets a retention (by age or size): the broker deletes old segments (see checkpointAll). */
  retains = false;
  /** A hash of the topic config this replica applies (reported in its status; see StatusReports). */
  configHash = 0;
  /** Background scrub (see Broker.scrubStep): where the next step reads, where this pass ends, when it began. */
  scrubFrom = 0;
  scrubPassEnd = 0;
  scrubPassStartedMs = Number.NEGATIVE_INFINITY;
  leaderCommitSeen = 0;
  /**
   * The group sleeps (see RaftNode.quiesce): the broker does not tick it, so an idle partition costs no
   * heartbeats. Woken by a proposal, by a message other than the answer to the quiesce heartbeat, or on a
   * follower when the leader's broker falls silent.
   */
  quiesced = false;
  /** Leader: consecutive ticks the group has been quiescable. */
  idleTicks = 0;
  /** Leader: the log's end and the term when the group went to sleep; any change means work arrived. */
  quiescedIndex = 0;
  quiescedTerm = 0;
  /** Snapshots installed from a leader (fragments pulled); a figure for status and tests. */
  snapshotsInstalled = 0;
  /** Payload bytes of the entries applied since the Raft log in memory was last compacted (the broker's bound). */
  appliedBytesInMemory = 0;

  /**
   * Committed batches applied (their producers answered) but not yet written to the partition log: the
   * write waits for the end of the turn, so the acknowledgements leave first (the batches are durable in
   * the WAL of a majority already). Reading `log` writes them first, so no reader ever misses one.
   */
  private unwritten: Uint8Array[] = [];
  private unwrittenEndOffset = 0;
  private writeScheduled = false;

  constructor(
    readonly id: PartitionId,
    readonly node: RaftNode,
    private readonly store: PartitionLog,
    public state: PartitionState,
    appliedIndex: number,
    /** Tells the broker's pump this group has work (a proposal to persist and send). */
    private onWork: () => void,
    /** The partition stopped taking writes (see stopWrites). */
    private onStopped: (e: Error) => void,
  ) {
    this.appliedIndex = appliedIndex;
    this.snapshotIndex = appliedIndex;
  }

  /** The partition log, with every applied batch written to it. */
  get log(): PartitionLog {
    if (this.unwritten.length > 0) this.writeApplied();
    return this.store;
  }

  get key(): string {
    return `${this.id.topic}/${this.id.partition}`;
  }

  isLeader(): boolean {
    return this.node.role === Role.Leader;
  }

  /** Proposes `data` and resolves once its entry is committed and applied here (so durable on a majority). */
  propose(data: Uint8Array): Promise<ApplyResult> {
    return this.track(() => this.node.propose(data));
  }

  /** One membership change at a time (the core refuses a second); resolves once it is applied. */
  proposeConfChange(change: ConfChange): Promise<ApplyResult> {
    return this.track(() => this.node.proposeConfChange(change));
  }

  /**
   * Why a write cannot be taken here, if it cannot. A failed replica that handed over names the new leader;
   * one that knows of none says why it refuses (DISK_FULL, ...), which is what a producer reports when no
   * replica could take its batch.
   */
  writeRefusal(): Error | undefined {
    if (this.failed && (this.isLeader() || this.node.leader === NONE)) return this.failed;
    if (!this.isLeader()) return new NotLeaderError(this.node.leader);
    return undefined;
  }

  private track(proposeFn: () => number): Promise<ApplyResult> {
    const refused = this.writeRefusal();
    if (refused) return Promise.reject(refused);
    let index: number;
    try {
      index = proposeFn();
    } catch (e) {
      if (e instanceof ProposalError) {
        return Promise.reject(e.reason === "not-leader" ? new NotLeaderError(e.leader) : new Error(`proposal refused: ${e.reason}`));
      }
      throw e;
    }
    const term = this.node.term;
    this.onWork();
    return new Promise<ApplyResult>((resolve, reject) => this.pending.set(index, { term, resolve, reject }));
  }

  /**
   * Applies committed entries in order: batches to the log, commands to the state. Entries at or below
   * appliedIndex were applied before a restart (the log may hold them) and only rebuild state.
   */
  applyCommitted(entries: Entry[]): void {
    for (const e of entries) {
      if (e.index <= this.appliedIndex) continue;
      assert(e.index === this.appliedIndex + 1, `apply out of order: ${e.index} after ${this.appliedIndex}`);
      this.appliedBytesInMemory += e.data.length;
      let result: ApplyResult = { kind: "none" };
      if (e.type === EntryType.Normal && e.data.length > 0) {
        result = this.state.apply(e.index, e.data);
        if (result.kind === "appended") {
          // Whether the log holds this batch already (applied before a restart) is told by offsets, which
          // the state assigns deterministically, not by the raft index stamped in the log's last batch:
          // that field lies outside the producer's checksum, and a flipped bit there must not make a
          // replay skip batches the log lacks, or write again batches it has (see PartitionLog.append).
          const storedEnd = this.unwritten.length > 0 ? this.unwrittenEndOffset : this.store.nextOffset;
          if (result.baseOffset >= storedEnd) {
            this.unwritten.push(result.batch);
            this.unwrittenEndOffset = result.baseOffset + result.recordCount;
          } else {
            assert(result.baseOffset + result.recordCount <= storedEnd, "a batch straddles the log's end after restart");
          }
        }
      }
      this.appliedIndex = e.index;
      const p = this.pending.get(e.index);
      if (p) {
        this.pending.delete(e.index);
        if (p.term === e.term) p.resolve(result);
        else p.reject(new NotLeaderError(this.node.leader));
      }
    }
    if (this.unwritten.length > 0 && !this.writeScheduled) {
      this.writeScheduled = true;
      setImmediate(() => {
        this.writeScheduled = false;
        if (this.unwritten.length > 0) this.writeApplied();
      });
    }
    // Readers wait for data in the log: with batches still unwritten they are woken once it is written.
    if (entries.length > 0 && this.unwritten.length === 0) this.wakeReaders();
  }

  private writeApplied(): void {
    const batches = this.unwritten;
    this.unwritten = [];
    if (this.failed) return;
    try {
      for (const b of batches) this.store.append(b);
    } catch (e) {
      this.stopWrites(e as Error);
    }
    this.wakeReaders();
  }

  /** A storage fault: no more writes are taken (waiting proposals fail); what is stored is still served. */
  stopWrites(e: Error): void {
    this.failed = e;
    this.failPending(e);
    this.onStopped(e);
  }

  /** Leadership moved away: entries proposed here may never commit. Producers retry (idempotently). */
  failPending(err: Error): void {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  /** Resolves when data at or after `offset` is readable, or after maxWaitMs. */
  waitForData(offset: number, maxWaitMs: number): Promise<void> {
    if (this.log.nextOffset > offset || maxWaitMs <= 0 || this.removed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const w: DataWaiter = {
        offset,
        wake: () => {
          clearTimeout(timer);
          this.waiters.delete(w);
          resolve();
        },
      };
      const timer = setTimeout(w.wake, maxWaitMs);
      this.waiters.add(w);
    });
  }

  wakeReaders(all = false): void {
    for (const w of [...this.waiters]) if (all || this.log.nextOffset > w.offset) w.wake();
  }

  /** The state a snapshot at appliedIndex carries (records themselves live in the log's fragments). */
  snapshotData(): Uint8Array {
    return this.state.encode();
  }

  /** A snapshot was installed: the state machine restarts from its data; the log already holds its records. */
  restoreSnapshot(meta: SnapshotMeta): void {
    this.state = PartitionState.decode(meta.data);
    assert(this.log.nextOffset === this.state.nextOffset, `log ends at ${this.log.nextOffset}, snapshot at ${this.state.nextOffset}`);
    this.appliedIndex = meta.index;
    this.snapshotIndex = meta.index;
    this.appliedBytesInMemory = 0;
    this.snapshotsInstalled++;
    this.wakeReaders();
  }

  close(): void {
    this.removed = true;
    this.failPending(new Error("partition closed"));
    this.wakeReaders(true);
  }
}
