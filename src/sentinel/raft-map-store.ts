// The cluster map replicated (or, alone, just made durable) by the same Raft core the brokers use, over
// the storage WAL. A command is proposed as a Raft entry and applied to the map when committed, in log
// order, on every sentinel; a restarted sentinel replays its WAL (after the last map snapshot) and
// resumes with every topic, group id and producer id it ever handed out.
//
// One sentinel is a group of one voter: it elects itself at start and "committed" means "fsynced here".
// Several sentinels exchange Raft messages through `send`; only the leader accepts proposals.

import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "../log";
import { RaftNode } from "../raft/node";
import { EntryType, ProposalError, Role, hardStateAfterLostVote, laterVoteFloor, sameVoteFloor, type Message, type NodeId, type Ready, type RestartState, type VoteFloor } from "../raft/types";
import { realFileLayer, writeFileAtomic } from "../storage";
import { Wal } from "../storage/wal";
import type { FsyncPolicy } from "../storage/types";
import { ClusterMap, decodeCommand, encodeCommand, type MapCommand, type MapResult, type MapSnapshot } from "./cluster-map";
import type { MapStore } from "./map-store";

/** The map's Raft group id inside the sentinel's own WAL (brokers' groups live elsewhere). */
export const MAP_GROUP = 1;
const MAX_PENDING_PROPOSALS = 10_000;
const DEFAULT_SNAPSHOT_EVERY_ENTRIES = 1_000;
/** A vote floor not yet settled (see VoteFloor): the torn WAL record that told it is overwritten by the next writes. */
const VOTE_FLOOR_FILE = "map-vote-floor.json";

export class NotSentinelLeaderError extends Error {
  constructor(readonly leader: NodeId) {
    super(leader === 0 ? "no sentinel leader elected yet" : `sentinel ${leader} leads the map`);
  }
}

export interface RaftMapStoreOptions {
  dir: string; // the WAL goes in <dir>/map-wal
  fsync: FsyncPolicy;
  id: NodeId;
  voters: NodeId[]; // all sentinels, this one included; [id] alone for the embedded default
  electionTicks: number;
  heartbeatTicks: number;
  /** Sends messages to other sentinels (several only); Raft retries by itself, so losing some is fine. */
  send?: (messages: Message[]) => void;
  snapshotEveryEntries?: number;
  log: Logger;
  onLeaderChange?: (leader: NodeId) => void;
}

interface Waiter {
  term: number;
  resolve: (r: MapResult) => void;
  reject: (e: unknown) => void;
}

export class RaftMapStore implements MapStore {
  readonly map = new ClusterMap();
  private readonly waiters = new Map<number, Waiter>();
  private pumping = false;
  private pumpAgain = false;
  private failed: Error | undefined;
  private closed = false;
  private appliedSinceSnapshot = 0;
  private lastLeader: NodeId = 0;
  /** Set while VOTE_FLOOR_FILE holds a floor the node has not settled yet. */
  private floorFile: string | undefined;

  private constructor(
    private readonly opts: RaftMapStoreOptions,
    private readonly wal: Wal,
    readonly node: RaftNode,
  ) {}

  static async open(opts: RaftMapStoreOptions): Promise<RaftMapStore> {
    if (!opts.voters.includes(opts.id)) throw new Error(`sentinel ${opts.id} is not among the voters ${opts.voters.join(",")}`);
    const wal = await Wal.open({
      dir: join(opts.dir, "map-wal"),
      fsync: opts.fsync,
      segmentBytes: 1024 * 1024, // the map is small; do not preallocate a broker-sized segment
      log: (level, message, details) => opts.log[level](`sentinel map wal: ${message}`, details),
    });
    const recovered = wal.recovered.get(MAP_GROUP);
    let restart: RestartState | undefined;
    let snapshot: MapSnapshot | undefined;
    if (recovered && (recovered.hardState || recovered.snapshot || recovered.entries.length > 0)) {
      if (recovered.damaged) opts.log.error("sentinel map wal damaged: records may be lost", {});
      const stored = recovered.hardState ?? { term: 0, vote: 0, commit: 0 };
      const hardState = hardStateAfterLostVote(stored, recovered.tornHardStateTerm, opts.id);
      if (hardState !== stored) {
        // The torn record may have carried a vote that already left: no second vote in its term.
        wal.setHardState(MAP_GROUP, hardState);
        await wal.sync();
        opts.log.warn("sentinel map: hard state lost with the WAL's tail: no vote in its term", { term: hardState.term, storedTerm: stored.term });
      }
      restart = {
        hardState,
        snapshot: recovered.snapshot,
        entries: recovered.entries,
        applied: recovered.snapshot?.index,
      };
      if (recovered.snapshot && recovered.snapshot.data.length > 0) {
        snapshot = JSON.parse(new TextDecoder().decode(recovered.snapshot.data)) as MapSnapshot;
      }
    }
    const floorPath = join(opts.dir, VOTE_FLOOR_FILE);
    if (restart) {
      const kept = existsSync(floorPath) ? (JSON.parse(readFileSync(floorPath, "utf8")) as VoteFloor) : undefined;
      restart.voteFloor = laterVoteFloor(kept, recovered?.tornTail);
      if (restart.voteFloor && !sameVoteFloor(restart.voteFloor, kept)) {
        // Durable before this sentinel answers any vote.
        writeFileAtomic(realFileLayer, floorPath, new TextEncoder().encode(JSON.stringify(restart.voteFloor)));
        opts.log.warn("sentinel map: newest entry lost with the WAL's tail: votes only for logs that reach it until settled", { ...restart.voteFloor });
      }
    }
    const node = new RaftNode(
      {
        id: opts.id,
        voters: [...opts.voters].sort((a, b) => a - b),
        electionTicks: opts.electionTicks,
        heartbeatTicks: opts.heartbeatTicks,
        seed: (opts.id * 2654435761 + Date.now()) >>> 0,
        preVote: true,
        checkQuorum: opts.voters.length > 1,
      },
      restart,
    );
    const store = new RaftMapStore(opts, wal, node);
    if (restart?.voteFloor) store.floorFile = floorPath;
    store.forgetSettledFloor(); // alone in the group, it settles at once
    if (snapshot) store.map.restore(snapshot);
    if (opts.voters.length === 1) node.campaign(); // alone: no one to wait for
    await store.pump(); // replays committed entries from the WAL into the map
    opts.log.info("sentinel map recovered", {
      epoch: store.map.version,
      topics: store.map.allTopics().length,
      brokers: store.map.allBrokers().length,
      raftIndex: node.appliedIndex,
      term: node.term,
    });
    return store;
  }

  get leader(): NodeId {
    return this.node.leader;
  }

  isLeader(): boolean {
    return this.node.role === Role.Leader;
  }

  /** Resolves when this sentinel leads and has applied everything committed before its term (§5.4.2). */
  async waitLeader(timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline && !this.closed) {
      if (this.isLeader() && this.node.appliedIndex >= this.node.commitIndex && this.node.commitIndex > 0 && this.termCommitted()) return true;
      await Bun.sleep(2);
    }
    return false;
  }

  private termCommitted(): boolean {
    return this.node.termAt(this.node.commitIndex) === this.node.term;
  }

  propose(command: MapCommand): Promise<MapResult> {
    if (this.closed) return Promise.reject(new Error("map store is closed"));
    if (this.failed) return Promise.reject(this.failed);
    if (!this.isLeader()) return Promise.reject(new NotSentinelLeaderError(this.node.leader));
    if (this.waiters.size >= MAX_PENDING_PROPOSALS) return Promise.reject(new Error("map store overloaded"));
    let index: number;
    try {
      index = this.node.propose(encodeCommand(command));
    } catch (e) {
      if (e instanceof ProposalError) return Promise.reject(new NotSentinelLeaderError(e.leader));
      throw e;
    }
    const term = this.node.term;
    const done = new Promise<MapResult>((resolve, reject) => this.waiters.set(index, { term, resolve, reject }));
    this.kick();
    return done;
  }

  /** A message from another sentinel. */
  step(m: Message): void {
    if (this.closed) return;
    this.node.step(m);
    this.kick();
  }

  tick(): void {
    if (this.closed) return;
    this.node.tick();
    this.kick();
  }

  private kick(): void {
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    void this.pump();
  }

  /** ready() -> persist (one fdatasync) -> send -> apply -> advance, until nothing is left. */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    this.pumpAgain = false;
    try {
      while (!this.failed && this.node.hasReady()) {
        this.pumpAgain = false;
        const rd = this.node.ready();
        await this.persist(rd);
        if (this.failed) break;
        if (rd.messages.length > 0) this.opts.send?.(rd.messages);
        this.apply(rd);
        this.node.advance(rd);
        this.forgetSettledFloor();
        this.maybeSnapshot();
      }
    } catch (e) {
      this.fail(e as Error);
    } finally {
      this.pumping = false;
    }
    // Work that arrived during the last await; a microtask, so repeated kicks never nest on the stack.
    if (this.pumpAgain && !this.failed && !this.closed && this.node.hasReady()) queueMicrotask(() => this.kick());
  }

  private async persist(rd: Ready): Promise<void> {
    let write = false;
    if (rd.snapshot) {
      this.wal.setSnapshot(MAP_GROUP, rd.snapshot);
      write = true;
    }
    if (rd.entries.length > 0) {
      this.wal.appendEntries(MAP_GROUP, rd.entries);
      write = true;
    }
    if (rd.hardState) {
      this.wal.setHardState(MAP_GROUP, rd.hardState);
      write = true;
    }
    if (!write) return;
    try {
      await this.wal.sync();
    } catch (e) {
      this.fail(e as Error);
    }
  }

  private apply(rd: Ready): void {
    if (rd.softState && rd.softState.leader !== this.lastLeader) {
      this.lastLeader = rd.softState.leader;
      this.opts.log.info("sentinel map leader", { leader: rd.softState.leader, raftRole: rd.softState.role, term: this.node.term });
      this.opts.onLeaderChange?.(rd.softState.leader);
      if (rd.softState.role !== Role.Leader) {
        // Proposals of an old term may never commit; callers retry against the new leader.
        for (const [index, w] of this.waiters) {
          this.waiters.delete(index);
          w.reject(new NotSentinelLeaderError(rd.softState.leader));
        }
      }
    }
    if (rd.snapshot && rd.snapshot.data.length > 0) {
      this.map.restore(JSON.parse(new TextDecoder().decode(rd.snapshot.data)) as MapSnapshot);
    }
    for (const e of rd.committedEntries) {
      const w = this.waiters.get(e.index);
      if (e.type !== EntryType.Normal || e.data.length === 0) {
        if (w) {
          this.waiters.delete(e.index);
          w.reject(new NotSentinelLeaderError(this.node.leader));
        }
        continue;
      }
      const result = this.map.apply(decodeCommand(e.data));
      this.appliedSinceSnapshot++;
      if (w) {
        this.waiters.delete(e.index);
        // Another leader's entry landed at our index: ours was lost with our term.
        if (w.term === e.term) w.resolve(result);
        else w.reject(new NotSentinelLeaderError(this.node.leader));
      }
    }
  }

  private forgetSettledFloor(): void {
    if (this.floorFile === undefined || this.node.voteFloor !== undefined) return;
    rmSync(this.floorFile, { force: true });
    this.floorFile = undefined;
    this.opts.log.info("sentinel map: vote floor settled", { commit: this.node.commitIndex });
  }

  private maybeSnapshot(): void {
    if (this.appliedSinceSnapshot < (this.opts.snapshotEveryEntries ?? DEFAULT_SNAPSHOT_EVERY_ENTRIES)) return;
    const applied = this.node.appliedIndex;
    if (applied === 0) return;
    const data = new TextEncoder().encode(JSON.stringify(this.map.snapshot()));
    const meta = this.node.compact(applied, data);
    this.wal.setSnapshot(MAP_GROUP, meta); // durable with the next sync; until then the entries still are
    this.appliedSinceSnapshot = 0;
  }

  private fail(e: Error): void {
    if (this.failed) return;
    this.failed = e;
    this.opts.log.error("sentinel map store failed: refusing writes", { error: e.message });
    for (const [index, w] of this.waiters) {
      this.waiters.delete(index);
      w.reject(e);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.pumping) await Bun.sleep(1);
    for (const [index, w] of this.waiters) {
      this.waiters.delete(index);
      w.reject(new Error("map store is closed"));
    }
    await this.wal.sync().catch(() => {});
    await this.wal.close();
  }
}
