// A broker: hosts many partitions, each its own Raft group, over ONE WAL. The pump moves the ready() of
// every group that has work through one write and one fdatasync, then sends and applies, so fsyncs per
// second follow the load, never the number of partitions.
import { create } from "@bufbuild/protobuf";
import { existsSync, readdirSync, readFileSync, rmdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { ErrorCode, PartitionStatusSchema, Role as WireRole, type PartitionStatus, type SetTopicRoleRequest } from "../proto/goulette_pb";
import { RaftNode } from "../raft/node";
import { ProgressState } from "../raft/progress";
import {
  MessageType,
  NONE,
  Role,
  hardStateAfterLostVote,
  laterVoteFloor,
  sameVoteFloor,
  type Message,
  type NodeId,
  type Ready,
  type RestartState,
  type SnapshotMeta,
  type SoftState,
  type VoteFloor,
} from "../raft/types";
import { PartitionLog, StorageError, Wal, parseFsyncPolicy, realFileLayer, writeFileAtomic, type PartitionLogSettings, type RecoveredGroup, type StorageLogger } from "../storage";
import { ClientPool, parseTopicConfig, serve, WireError, type Body, type TopicSettings, type WireServer } from "../wire";
import type { Logger } from "../log";
import { assert } from "./assert";
import { BrokerHandlers } from "./handlers";
import type { BrokerOptions } from "./options";
import { Partition, NotLeaderError, type PartitionId } from "./partition";
import { PartitionState } from "./partition-state";
import { PeerTransport } from "./peers";
import { decodeRaftBatch, decodeRaftFrame, type GroupMessage } from "./raft-codec";
import { SentinelSession } from "./sentinel-session";
import { StatusReports, configHash } from "./status-reports";
import { pullFragments } from "./fragments";
import { repairDamaged } from "./repair";

export const VERSION = "0.1.0";
const WAL_DIR = ".wal";
const META_FILE = "partition.json";
/** How often a broker with set-aside partitions asks the sentinel whether they are still placed here. */
const SET_ASIDE_CHECK_MS = 2_000;
const CHECKPOINT_INTERVAL_MS = 1_000;
const CHECKPOINT_MAX_AGE_MS = 60_000;
/** A partition's counters (log end, commit, match indexes) are reported at most this often, but see StatusReports. */
const COUNTERS_REPORT_EVERY_MS = 1_000;
const WAL_SEGMENTS_SOFT_MAX = 2;
const COMPACT_INTERVAL_MS = 100;
const COMPACT_EVERY_ENTRIES = 256;
/**
 * Entries hold their batches, so a count alone let a partition of 1 MiB batches keep 256 MiB in memory, and
 * at 1 KiB window 256 (one 263 KB entry per round) 64-128 MiB: a broker grew to ~310 MB (64 KiB messages:
 * 770-860 MB), and where the first touch of a page is dear (this VM) its first 200,000 messages ran at
 * 29-33k msg/s instead of 52-56k while it faulted in ~60,000 pages. With 4 MiB: 145-185 MB (424-604 MB).
 */
const COMPACT_EVERY_BYTES = 4 * 1024 * 1024;
const COMPACT_LAG_ENTRIES = 10_000;
const FOLLOWER_HOLDOFF_ELECTIONS = 4;
const SNAPSHOT_STUCK_MS = 10_000;
/** Failed partitions named in the storage error beyond the first (the sentinel shows it in one line). */
const STORAGE_ERROR_NAMES_MAX = 10;
const EARLY = new Set<MessageType>([MessageType.Append, MessageType.Heartbeat, MessageType.Snapshot]);
/** A leader lets a group sleep after it was idle this many election timeouts (no flapping under bursts). */
const QUIESCE_AFTER_ELECTIONS = 1;
/** A follower wakes its sleeping groups when their leader's broker was silent this many election timeouts. */
const PEER_SILENT_ELECTIONS = 2;
// Background scrub. 4 MiB/s reads a terabyte in three days; a step reads at most SCRUB_STEP_BYTES_MAX at
// once, fetched into the page cache on the thread pool first (partition reads are synchronous).
const SCRUB_STEP_MS = 100;
const SCRUB_BYTES_PER_S = 4 * 1024 * 1024;
const SCRUB_STEP_BYTES_MAX = 256 * 1024;
const SCRUB_PASS_INTERVAL_MS = 3_600_000;

/** One pass of the pump: the readies it took, and whether its fdatasync (if it needed one) is done. */
interface PumpRound {
  work: [Partition, Ready][];
  done: boolean;
}

/** What a partition directory remembers so a restarted broker rejoins its groups without the sentinel. */
interface PartitionMeta {
  topic: string;
  partition: number;
  group: number;
  voters: NodeId[]; // the initial replica set (empty when it joined an existing group as a learner)
  learners: NodeId[];
  peers: Record<string, string>; // broker id -> address
  config?: Record<string, string>; // the topic's config (retention, segment size), as SetTopicRole gave it
  /**
   * An entry this replica may have acknowledged and then lost with its WAL's torn tail (see VoteFloor),
   * kept here until settled: the WAL record itself is overwritten by the next writes, and a second crash
   * before the floor settles must not forget it.
   */
  voteFloor?: VoteFloor;
}

/** The WAL recovered something of this group: a hard state, a snapshot or entries. */
function holdsState(recovered: RecoveredGroup | undefined): recovered is RecoveredGroup {
  return recovered !== undefined && (recovered.hardState !== undefined || recovered.snapshot !== undefined || recovered.entries.length > 0);
}

/** A partition's meta file, checked field by field: a damaged file must not become a wrong group. */
function parseMeta(text: string): PartitionMeta {
  const m = JSON.parse(text) as Partial<PartitionMeta> | null;
  const ids = (v: unknown) => Array.isArray(v) && v.every((x) => Number.isInteger(x) && x > 0);
  if (
    m === null ||
    typeof m !== "object" ||
    typeof m.topic !== "string" ||
    !Number.isInteger(m.partition) ||
    !Number.isInteger(m.group) ||
    m.group! <= 0 ||
    !ids(m.voters) ||
    !ids(m.learners) ||
    typeof m.peers !== "object" ||
    m.peers === null
  ) {
    throw new Error("not a partition meta (topic, partition, group, voters, learners, peers)");
  }
  return m as PartitionMeta;
}

function roleToWire(r: Role): WireRole {
  switch (r) {
    case Role.Leader:
      return WireRole.LEADER;
    case Role.Follower:
      return WireRole.FOLLOWER;
    default:
      return WireRole.CANDIDATE;
  }
}

export class Broker {
  readonly log: Logger;
  readonly pool: ClientPool;
  readonly peers: PeerTransport;
  readonly byGroup = new Map<number, Partition>();
  readonly byName = new Map<string, Partition>();
  readonly handlers: BrokerHandlers;
  wal!: Wal;
  server!: WireServer;
  address = "";
  private session!: SentinelSession;
  private dirty = new Set<Partition>();
  /** The last lifecycle change (SetTopicRole, RemoveTopic) of each partition, by "topic/partition" (see exclusive). */
  private readonly lifecycle = new Map<string, Promise<void>>();
  /** Groups that are awake and tick; quiesced ones are left out until woken. */
  private readonly ticking = new Set<Partition>();
  /** What the sentinel last heard of each partition, and what changed since. */
  readonly statusReports = new StatusReports({
    all: () => this.byGroup.values(),
    awake: () => this.ticking,
    status: (p) => this.status(p),
    countersEveryMs: COUNTERS_REPORT_EVERY_MS,
  });
  private pumping = false;
  /** Pump rounds not finished yet (their fdatasync, or an earlier round's, is in flight), oldest first. */
  private rounds: PumpRound[] = [];
  private pumpScheduled = false;
  private peerFlushScheduled = false;
  /** Stopped: the connection pool is closed. */
  private halted = false;
  private tickTimer: ReturnType<typeof setInterval> | undefined;
  private checkpointTimer: ReturnType<typeof setInterval> | undefined;
  private compactTimer: ReturnType<typeof setInterval> | undefined;
  private scrubTimer: ReturnType<typeof setInterval> | undefined;
  private scrubCursor = 0;
  private scrubbing = false;
  private relieving = false;
  private metas = new Map<number, PartitionMeta>();
  /** Partitions whose meta holds a vote floor not yet settled (cleared from the meta once it is). */
  private readonly floored = new Set<Partition>();
  /** When each peer broker was last heard from (any Raft frame, pings included). */
  private lastHeard = new Map<NodeId, number>();
  private ticks = 0;
  private stopping = false;
  /** Partitions found on disk whose meta could not be read, by key: why (see restorePartitions). */
  private readonly setAside = new Map<string, string>();
  private resolvingSetAside = false;
  private setAsideTimer: ReturnType<typeof setInterval> | undefined;
  /** Failed partitions this broker has tried to hand leadership away from (to log it once). */
  private readonly handedOff = new WeakSet<Partition>();
  /** Fatal WAL fault: nothing can be made durable any more, so nothing is acknowledged. */
  walFailed: Error | undefined;

  constructor(readonly opts: BrokerOptions, log: Logger) {
    this.log = log.child({ broker: opts.id });
    this.pool = new ClientPool({ maxFrameBytes: opts.maxFrameBytes, connectTimeoutMs: 1_000, backoffBaseMs: 20, backoffMaxMs: 500 });
    this.peers = new PeerTransport(opts.id, this.pool, opts.maxFrameBytes);
    this.handlers = new BrokerHandlers(this);
  }

  async start(): Promise<void> {
    const fsync = parseFsyncPolicy(this.opts.fsync);
    this.wal = await Wal.open({
      dir: join(this.opts.dataDir, WAL_DIR),
      fsync,
      segmentBytes: this.opts.walSegmentBytes,
      // fdatasync on the thread pool: the pump awaits it, and meanwhile the event loop keeps reading
      // followers' answers and the next requests, and writes the next round. Inline (no thread-pool hop)
      // only for a lone round that finds the WAL idle and carries no entry this broker leads (see pump):
      // nothing to overlap. Measured (one partition, alternated, three sets): window 1 better in 15 of 20
      // pairs, median +8-20% msg/s, p99 5.22-5.40 -> 4.28-5.07 ms. Inline without the idle condition cost
      // 1,000 partitions 30% (3,761 -> 2,617 msg/s): their back-to-back rounds each blocked the loop.
      // Whatever its size: a follower's 263 KB round (1 KiB, window 256) on the pool waited 0.36 ms for
      // its fdatasync to start and 0.25 ms more to answer (bench timeline), on the path of every
      // acknowledgement; inline (bench/ab.ts, 4 rounds x 2 runs of 200k) one partition 53.4k -> 60.0k
      // msg/s median, 8 partitions 56.0k -> 60.4k (3 rounds), 1,000 partitions 4,583 -> 4,960, 64 KiB
      // level (1,845 -> 1,895 msg/s), and the brokers' CPU per message 5-10% lower.
      inlineFsyncWhenAlone: true,
      inlineFsyncIdleMs: 0.1,
      fs: this.opts.fs,
      log: storageLogger(this.log),
    });
    for (const cut of this.wal.cuts) this.log.warn("wal tail cut", { ...cut });
    await this.restorePartitions();

    const [host, portText] = splitHostPort(this.opts.listen);
    this.server = serve({
      hostname: host,
      port: Number(portText),
      maxFrameBytes: this.opts.maxFrameBytes,
      handle: (body) => this.handle(body),
      raw: (frame) => this.handleRaftFrame(frame),
    });
    this.address = this.opts.advertise ?? `${host}:${this.server.port}`;
    this.log.info("listening", { address: this.address, dataDir: this.opts.dataDir, fsync: this.opts.fsync });

    this.tickTimer = setInterval(() => this.tick(), this.opts.tickMs);
    this.checkpointTimer = setInterval(() => void this.checkpointAll(), this.opts.checkpointIntervalMs ?? CHECKPOINT_INTERVAL_MS);
    this.compactTimer = setInterval(() => {
      this.compactMemory();
      void this.relieveWal();
    }, COMPACT_INTERVAL_MS);
    if ((this.opts.scrubBytesPerS ?? SCRUB_BYTES_PER_S) > 0) this.scrubTimer = setInterval(() => void this.scrubStep(), SCRUB_STEP_MS);
    this.setAsideTimer = setInterval(() => void this.resolveSetAside(), SET_ASIDE_CHECK_MS);
    this.session = new SentinelSession(
      {
        brokerId: this.opts.id,
        address: this.address,
        sentinels: this.opts.sentinels,
        fsyncPolicy: this.opts.fsync,
        version: VERSION,
        report: (o) => this.statusReports.report(o),
        storageError: () => this.storageError(),
        highestProducerId: () => {
          let max = 0;
          for (const p of this.byGroup.values()) max = Math.max(max, p.state.producers.highestId);
          return max;
        },
      },
      this.pool,
      this.log,
    );
    this.session.start();
  }

  private handle(body: Body): Body | undefined | Promise<Body | undefined> {
    if (body.case === "raft") {
      this.stepBatch(body.value.from, decodeRaftBatch(body.value));
      return undefined;
    }
    return this.handlers.handle(body);
  }

  /** A peer's Raft frame read by hand (see decodeRaftFrame); false leaves it to the generated decoder. */
  private handleRaftFrame(frame: Uint8Array): boolean {
    const batch = decodeRaftFrame(frame);
    if (batch === undefined) return false;
    this.stepBatch(batch.from, batch.messages);
    return true;
  }

  private stepBatch(from: NodeId, messages: GroupMessage[]): void {
    this.lastHeard.set(from, performance.now());
    for (const { group, msg } of messages) this.stepRemote(group, msg);
  }

  private stepRemote(group: number, msg: Message): void {
    // A broker whose WAL failed has left every group (see failWal): stepping would only pile up, in
    // memory, entries and answers it can never persist or send.
    if (this.walFailed) return;
    const p = this.byGroup.get(group);
    if (!p || p.removed) {
      this.log.debug("message for unknown group ignored", { group, from: msg.from, type: msg.type });
      return;
    }
    if (p.left) return; // silent for this group, as if crashed (see leaveGroup)
    if (p.voteFenced) {
      if (msg.type === MessageType.Vote || msg.type === MessageType.PreVote) {
        this.log.debug("vote withheld: log damaged, not yet repaired by a leader", { partition: p.key, from: msg.from });
        return;
      }
      if (msg.type === MessageType.Append && msg.term >= p.node.term) p.leaderCommitSeen = Math.max(p.leaderCommitSeen, msg.commit);
    }
    try {
      p.node.step(msg);
    } catch (e) {
      // A peer's message must never take the broker down; the core asserts its own invariants.
      this.log.error("raft step failed", { group, error: (e as Error).message });
      return;
    }
    if (msg.quiesce) {
      if (p.node.canSleepOn(msg)) this.sleep(p);
    } else if (p.quiesced && !(msg.type === MessageType.HeartbeatResponse && p.isLeader())) {
      // Anything but the answers to our own quiesce heartbeat means the group has something to do.
      this.wake(p);
    }
    this.markDirty(p);
  }

  /** The group ticks again: heartbeats on a leader, the election timer on a follower. */
  wake(p: Partition): void {
    p.quiesced = false;
    p.idleTicks = 0;
    if (!p.removed) this.ticking.add(p);
  }

  /** The group stops ticking until something wakes it (see tick() and wakeFollowersOfSilentPeers()). */
  private sleep(p: Partition): void {
    p.quiesced = true;
    this.ticking.delete(p);
  }

  /**
   * A sleeping follower must notice that its leader's broker died (its own election timer then runs, as for
   * any lost leader). Brokers ping each other while their groups sleep, so this is a question per peer:
   * only when a peer has gone silent are the sleeping groups looked at.
   */
  private wakeFollowersOfSilentPeers(now: number): void {
    let silent: Set<NodeId> | undefined;
    for (const id of this.lastHeard.keys()) if (this.peerSilent(id, now)) (silent ??= new Set()).add(id);
    if (silent === undefined) return;
    for (const p of this.byGroup.values()) {
      if (p.quiesced && !p.removed && !p.isLeader() && (p.node.leader === NONE || silent.has(p.node.leader))) this.wake(p);
    }
  }

  private peerSilent(id: NodeId, now: number): boolean {
    const heard = this.lastHeard.get(id);
    return heard === undefined || now - heard > PEER_SILENT_ELECTIONS * this.opts.electionTicks * this.opts.tickMs;
  }

  /**
   * Ticks the groups that are awake. Sleeping (quiesced) groups cost nothing here: a sleeping leader wakes
   * when it gets work (markDirty), any group when a message other than its quiesce answers arrives
   * (handleRaft), a sleeping follower when its leader's broker falls silent (checked per peer). With many
   * idle partitions, this loop was most of what an idle broker did.
   */
  private tick(): void {
    // No ticks and no pings once the WAL failed: to its peers this broker is then silent, as if it had
    // crashed, so they elect new leaders for the groups it led, sleeping ones too (see failWal).
    if (this.walFailed) return;
    const now = performance.now();
    const quiesceAfter = QUIESCE_AFTER_ELECTIONS * this.opts.electionTicks;
    const heartbeatDue = ++this.ticks % this.opts.heartbeatTicks === 0;
    if (heartbeatDue) this.wakeFollowersOfSilentPeers(now);
    for (const p of this.ticking) {
      if (p.removed || p.quiesced || p.left) {
        this.ticking.delete(p);
        continue;
      }
      if (p.tickHoldoff > 0) {
        p.tickHoldoff--;
        continue;
      }
      if (p.failed) {
        // A replica that cannot write its partition log must not lead: it would refuse every produce.
        // As leader it keeps ticking (heartbeats) while it hands over, and hands over again if a transfer
        // lapsed; as follower it leaves the group (leaveGroup), and until it has its election timer never
        // runs, so it never campaigns.
        if (!p.isLeader()) continue;
        if (!p.node.transferring) this.handOff(p);
      }
      p.node.tick();
      if (p.isLeader() && p.node.quiescable()) {
        if (++p.idleTicks >= quiesceAfter && p.node.quiesce()) {
          p.quiescedIndex = p.node.lastIndex;
          p.quiescedTerm = p.node.term;
          this.sleep(p);
        }
      } else {
        p.idleTicks = 0;
      }
      if (p.node.hasReady()) this.dirty.add(p);
    }
    // Sleeping groups send no heartbeats, so followers learn that this broker lives from a ping per peer.
    if (heartbeatDue) this.peers.ping();
    this.schedulePump();
  }

  markDirty(p: Partition): void {
    // A sleeping leader given a proposal (or any change of its log or term) wakes to replicate it.
    if (p.quiesced && p.isLeader() && (p.node.lastIndex !== p.quiescedIndex || p.node.term !== p.quiescedTerm)) this.wake(p);
    this.dirty.add(p);
    this.statusReports.touch(p);
    this.schedulePump();
  }

  schedulePump(): void {
    // During a pass, work that arrives lands in `dirty`, and the pass schedules the next one when it ends.
    if (this.pumping || this.pumpScheduled) return;
    this.pumpScheduled = true;
    // setImmediate, not a microtask: requests that arrived in the same I/O turn join this round.
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  /**
   * One round for every group with work: write all readies to the WAL (one write, ONE fdatasync for the
   * round), send what need not wait for it, apply what is committed; the rest of the round finishes when
   * its fsync does (finishRounds). Rounds overlap: the next one is written, sent and applied while this
   * one's fdatasync is in flight, so a follower's answer commits and acknowledges at once instead of
   * after our next fsync, and a new batch's Appends leave at once instead of after our current one.
   * The WAL runs one fdatasync at a time and gives the rounds that arrive meanwhile one fsync together.
   */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      // After a WAL failure nothing is taken from the groups: what they hold can no longer be made durable.
      if (this.walFailed) {
        this.dirty.clear();
        return;
      }
      let needSync = false;
      const work: [Partition, Ready][] = [];
      for (const p of this.dirty) {
        if (p.installing || p.removed || p.left || !p.node.hasReady()) continue;
        const rd = p.node.ready();
        if (rd.snapshot) {
          void this.installSnapshot(p, rd);
          continue;
        }
        work.push([p, rd]);
      }
      this.dirty.clear();
      if (work.length === 0) return;
      // A leader's appends and heartbeats promise nothing about its own disk (the core counts the leader
      // towards a majority only once advance() says its entries are persisted), so they leave first, before
      // our WAL encoding and write, and the followers' work overlaps ours. (A leader's term is durable
      // already: it was persisted before the vote requests that won it.)
      let carriesEntries = false;
      for (const [p, rd] of work) {
        for (const m of rd.messages) {
          if (!EARLY.has(m.type)) continue;
          this.peers.queue(p.id.group, m);
          if (m.entries.length > 0 || m.type === MessageType.Snapshot) carriesEntries = true;
        }
      }
      // Appends without entries (a new commit index, a heartbeat) are not on anyone's path: they leave
      // after this turn, behind the acknowledgements that the entries committed here release (see
      // flushPeersAfterTurn).
      if (carriesEntries) this.peers.flush(true);
      else this.flushPeersAfterTurn();
      for (const [p, rd] of work) {
        // Hard state before entries: a torn tail cuts a suffix of the WAL, so the stored term is then
        // never older than the stored entries (a new term's first entries come in the same round).
        if (rd.hardState) {
          this.wal.setHardState(p.id.group, rd.hardState);
          // Term and vote must be durable before any message that relies on them leaves. The commit
          // index need not be (it is learnt again from the leader), so a commit-only change rides along
          // with the next write instead of costing an fdatasync of its own.
          const prev = p.persistedHardState;
          if (!prev || prev.term !== rd.hardState.term || prev.vote !== rd.hardState.vote) needSync = true;
          p.persistedHardState = rd.hardState;
        }
        if (rd.entries.length > 0) {
          this.wal.appendEntries(p.id.group, rd.entries);
          needSync = true;
        }
      }
      const round: PumpRound = { work, done: false };
      this.rounds.push(round);
      // The WAL write happens here and its fdatasync starts on the thread pool; applying (partition log
      // writes, acknowledgements) then overlaps the disk's wait instead of delaying its start. A round
      // that carries entries this broker leads never blocks the event loop on its fdatasync, however
      // small: both followers' answers commit them without our disk (two of three), so they must be read
      // while it runs (and a slow disk must not stall every partition this broker serves). Window 1,
      // 1 KiB (bench/ab.ts, 6 rounds x 2 runs of 20,000, against inline for every lone round): median
      // 726 -> 761 msg/s, p50 1.25 -> 1.17 ms, p99 level: runs spread 600-1,000 either way, so a small
      // gain at most. A follower's answer waits for its own fdatasync anyway: its lone rounds stay inline.
      let leads = false;
      for (const [p, rd] of work) if (rd.entries.length > 0 && p.isLeader()) leads = true;
      const synced = needSync ? this.wal.sync({ mayInline: !leads }) : undefined;
      // Committed entries are durable on a majority already (the core counts this replica only once it
      // persisted), so they are applied and acknowledged now, not one fdatasync later. The partition log
      // may then briefly hold an entry our WAL does not: after a crash the group replays it from the
      // leader and apply skips what the log already has.
      for (const [p, rd] of work) this.applyReady(p, rd);
      const finish = () => {
        round.done = true;
        this.finishRounds();
      };
      if (synced) {
        synced.then(finish, (e: unknown) => {
          this.failWal(e as Error);
          finish();
        });
      } else {
        // Nothing to make durable, but its answers may rely on an earlier round's write: they leave in order.
        finish();
      }
    } finally {
      this.pumping = false;
    }
    if (this.dirty.size > 0) this.schedulePump();
  }

  /**
   * Sends what is queued for peers once this turn's acknowledgements are written. A leader's commit
   * notices to its followers went out before them, and on two cores their wake-ups (two followers
   * applying, answering) competed with the producer's for the CPU.
   */
  private flushPeersAfterTurn(): void {
    if (this.peerFlushScheduled) return;
    this.peerFlushScheduled = true;
    setImmediate(() => {
      this.peerFlushScheduled = false;
      if (!this.halted) this.peers.flush(true); // a closed pool would dial the peers again
    });
  }

  /**
   * Rounds finish in the order they were taken, each once its fsync and every earlier one's are done: then
   * the messages that promise what it wrote (answers to appends, votes) leave, and its readies advance.
   */
  private finishRounds(): void {
    let sent = false;
    while (this.rounds.length > 0 && this.rounds[0]!.done) {
      const { work } = this.rounds.shift()!;
      if (this.walFailed) {
        // Nothing promised after a failed sync may be sent or advanced; the broker can only serve reads.
        for (const [p] of work) p.failPending(this.walFailed);
        continue;
      }
      for (const [p, rd] of work) {
        for (const m of rd.messages) {
          if (EARLY.has(m.type)) continue;
          this.peers.queue(p.id.group, m);
          sent = true;
        }
      }
      for (const [p, rd] of work) this.advanceReady(p, rd);
    }
    if (sent) this.peers.flush();
    if (this.dirty.size > 0) this.schedulePump();
  }

  private finishReady(p: Partition, rd: Ready): void {
    this.applyReady(p, rd);
    this.advanceReady(p, rd);
  }

  private applyReady(p: Partition, rd: Ready): void {
    this.statusReports.touch(p);
    if (rd.softState) this.onSoftState(p, rd.softState);
    if (!p.failed) {
      try {
        p.applyCommitted(rd.committedEntries);
      } catch (e) {
        p.stopWrites(e as Error);
      }
    }
  }

  private advanceReady(p: Partition, rd: Ready): void {
    p.node.advance(rd);
    this.statusReports.touch(p);
    if (this.floored.size > 0 && this.floored.has(p) && p.node.voteFloor === undefined) this.floorSettled(p);
    if (p.voteFenced && p.leaderCommitSeen > 0 && p.node.commitIndex >= p.leaderCommitSeen) {
      p.voteFenced = false;
      this.log.info("log repaired by the leader: votes allowed again", { partition: p.key, commit: p.node.commitIndex });
    }
    if (p.node.hasReady()) this.dirty.add(p);
  }

  private floorSettled(p: Partition): void {
    this.floored.delete(p);
    const meta = this.metas.get(p.id.group);
    if (!meta || p.removed) return;
    delete meta.voteFloor;
    this.saveMeta(meta);
    this.log.info("vote floor settled", { partition: p.key, commit: p.node.commitIndex });
  }

  private onSoftState(p: Partition, s: SoftState): void {
    if (s.role === Role.Leader) this.log.info("election won", { partition: p.key, term: p.node.term });
    else this.log.info("role change", { partition: p.key, role: s.role, leader: s.leader, term: p.node.term });
    if (s.role !== Role.Leader) p.failPending(new NotLeaderError(s.leader));
    if (s.role !== Role.Leader && p.failed) this.leaveGroup(p); // handed over (handOff), or the leader is now known
    this.session?.nudge();
  }

  /**
   * Nothing can be made durable here any more, so this broker leaves every Raft group: it stops ticking,
   * pinging, stepping and sending (tick, stepRemote; the pump takes nothing). Its peers see a silent broker
   * and elect new leaders within about an election timeout (a sleeping group's followers wake when the
   * pings stop), as after a crash, and no acknowledged entry depends on this disk. Produce requests get
   * the storage error (DISK_FULL, ...), which clients take as "try another replica"; what the partition
   * logs hold is still served to readers. Writes come back with a restart once the disk is fixed.
   */
  private failWal(e: Error): void {
    if (this.walFailed) return;
    this.walFailed = e;
    this.log.error("wal failed: this broker leaves its Raft groups and acknowledges no more writes until restarted", { error: e.message });
    for (const p of this.byGroup.values()) {
      p.failed = e;
      p.failPending(e);
      // Claim no leadership we cannot exercise: readers asking for the leader go elsewhere at once.
      p.node.stepDown();
      this.statusReports.touch(p);
    }
  }

  /** What the sentinel shows operators: the WAL's failure, else the first failed partition's, else "". */
  storageError(): string {
    if (this.walFailed) return `wal: ${this.walFailed.message}`;
    const failed = [...this.byGroup.values()].filter((p) => p.failed && !p.removed);
    const first = failed[0];
    if (first) {
      // Every such replica has left its group (or is handing over): the operator needs all their names.
      const others = failed.slice(1, 1 + STORAGE_ERROR_NAMES_MAX).map((p) => p.key);
      const beyond = failed.length - 1 - others.length;
      const also = others.length === 0 ? "" : ` (also ${others.join(", ")}${beyond > 0 ? ` and ${beyond} more` : ""})`;
      return `${first.key}: ${first.failed!.message}${also}`;
    }
    for (const [key, error] of this.setAside) return `${key} set aside: ${error}`;
    return "";
  }

  private onPartitionStopped(p: Partition, e: Error): void {
    this.log.error("partition stopped accepting writes", { partition: p.key, error: e.message, leader: p.isLeader() });
    if (p.isLeader()) this.handOff(p);
    else this.leaveGroup(p);
  }

  /**
   * A replica whose partition log cannot be written, and that no longer leads, leaves its group: it stops
   * stepping, ticking and sending for it, so its peers see a crashed replica, and it drops the group's
   * WAL records. Staying (voting and replicating through the WAL) kept those records, which can never be
   * checkpointed, and as WAL segments are reused as a prefix only, every later segment with them, until
   * the disk was full and the broker failed every other partition too. The group goes on with the other
   * replicas (two of three); the sentinel shows this broker's storage error. The drop is recorded in the
   * WAL, so after a restart the replica votes only for logs that reach the newest entry it dropped until
   * the commit index does: it may have acknowledged entries it no longer holds (see openPartition). What
   * the log holds is still served, but a reader at its end is sent elsewhere (handlers: fetch), as it will
   * not grow here. A lone replica (RF1) never leaves: nothing else holds what its WAL keeps, which is
   * written again at the WAL's head whenever it holds the oldest segment (relieveWal).
   */
  private leaveGroup(p: Partition): void {
    if (p.left || p.removed || p.installing || p.isLeader() || this.walFailed) return;
    // Not before it knows the leader: producers that reach it are sent there (writeRefusal), and once
    // it has left it learns of no leader any more. Until then it stays, and never campaigns (tick).
    if (p.node.leader === NONE) return;
    p.left = true;
    this.ticking.delete(p);
    this.statusReports.touch(p);
    this.log.warn("partition left its group: its log cannot be written; its WAL records are dropped until a restart", { partition: p.key });
    this.wal.drop(p.id.group).catch((e: unknown) => {
      if (!this.stopping) this.failWal(e as Error); // a WAL closed by a stop is no fault
    });
  }

  /**
   * Moves a failed partition's leadership to the voter whose log is most complete (Raft sends it
   * TimeoutNow once it holds all our entries), so producers are served there. With no other voter the
   * partition stays here and refuses writes.
   */
  private handOff(p: Partition): void {
    let target = 0;
    let best = -1;
    p.node.forEachMatch((id, match) => {
      if (id !== this.opts.id && p.node.conf.voters.includes(id) && match > best) {
        target = id;
        best = match;
      }
    });
    if (target === 0) return;
    // Once per partition: a transfer that lapses (the target was unreachable) is retried every tick.
    if (!this.handedOff.has(p)) this.log.warn("handing leadership over: this replica cannot write", { partition: p.key, to: target });
    this.handedOff.add(p);
    p.node.transferLeadership(target);
    if (p.quiesced) this.wake(p);
    this.markDirty(p);
  }

  /**
   * A follower too far behind got a snapshot: pull the fragments it lacks from the leader, make them durable,
   * record the snapshot in the WAL, and only then let Raft answer (the answer says "I hold up to index").
   */
  private async installSnapshot(p: Partition, rd: Ready): Promise<void> {
    const snap = rd.snapshot!;
    p.installing = true;
    // The ready cannot be given back, and advancing it would claim the snapshot is durable: so the install
    // is retried (the leader may have moved, a peer may be briefly unreachable) until it succeeds or the
    // partition goes away.
    for (let attempt = 0; !p.removed && !this.stopping && !this.walFailed; attempt++) {
      try {
        const target = PartitionState.decode(snap.data).nextOffset;
        const leader = this.peers.addressOf(p.node.leader);
        this.log.info("installing snapshot", { partition: p.key, index: snap.index, upToOffset: target, from: leader, attempt });
        try {
          if (p.log.nextOffset !== target) {
            if (leader === undefined) throw new Error(`no address for leader ${p.node.leader}`);
            await pullFragments(this.pool.get(leader), p, target, this.log);
          }
          await p.log.flush();
        } catch (e) {
          // The partition log cannot be written (a full disk, an I/O error): retrying would hold the group,
          // and its WAL records, here for ever. It fails, and leaves the group below, as any replica whose
          // partition log fails.
          if (e instanceof StorageError && (e.code === "DISK_FULL" || e.code === "READ_ONLY" || e.code === "IO")) {
            p.stopWrites(e);
            break;
          }
          throw e;
        }
        this.wal.setSnapshot(p.id.group, snap);
        if (rd.hardState) this.wal.setHardState(p.id.group, rd.hardState);
        if (rd.entries.length) this.wal.appendEntries(p.id.group, rd.entries);
        await this.wal.sync();
        p.restoreSnapshot(snap);
        for (const m of rd.messages) this.peers.queue(p.id.group, m);
        this.peers.flush();
        this.finishReady(p, rd);
        this.log.info("snapshot installed", { partition: p.key, index: snap.index, nextOffset: p.log.nextOffset });
        break;
      } catch (e) {
        this.log.warn("snapshot install failed, retrying", { partition: p.key, error: (e as Error).message, attempt });
        await Bun.sleep(Math.min(1_000, 50 * 2 ** Math.min(attempt, 5)));
      }
    }
    p.installing = false;
    if (p.failed) this.leaveGroup(p);
    this.markDirty(p);
  }

  /** Re-fetches damaged ranges of a partition log from the other replicas (leader first). */
  async repair(p: Partition): Promise<void> {
    if (p.repairing || p.removed || p.log.damagedRanges().length === 0) return;
    p.repairing = true;
    try {
      const others = p.node.conf.voters.concat(p.node.conf.learners).filter((id) => id !== this.opts.id);
      others.sort((a, b) => (a === p.node.leader ? -1 : b === p.node.leader ? 1 : a - b));
      const addresses = others.flatMap((id) => this.peers.addressOf(id) ?? []);
      await repairDamaged(p, addresses, this.pool, this.log);
    } finally {
      p.repairing = false;
    }
  }

  /**
   * One step of the background scrub: partitions in turn, each read from where its last step ended, until
   * this step's share of the byte rate is spent. Reading verifies every batch's checksum, so damage nobody
   * has read yet (a bit flip in an old segment) is found and repaired from a peer while the other copies
   * still hold it, not when a lagging consumer or a new replica finally needs it. A partition's pass ends
   * where its log ended when the pass began; the next one starts at most every scrubPassIntervalMs, so
   * small or idle partitions are not read over and over, nor a busy one's newest bytes chased.
   */
  private async scrubStep(): Promise<void> {
    if (this.stopping || this.scrubbing) return;
    this.scrubbing = true;
    try {
      await this.scrubParts();
    } finally {
      this.scrubbing = false;
    }
  }

  private async scrubParts(): Promise<void> {
    const parts = [...this.byGroup.values()];
    let budget = Math.floor(((this.opts.scrubBytesPerS ?? SCRUB_BYTES_PER_S) * SCRUB_STEP_MS) / 1000);
    const now = performance.now();
    const passEvery = this.opts.scrubPassIntervalMs ?? SCRUB_PASS_INTERVAL_MS;
    for (let n = 0; n < parts.length && budget > 0; n++) {
      const p = parts[this.scrubCursor++ % parts.length]!;
      if (p.removed || p.installing || p.repairing || p.failed) continue;
      if (p.scrubFrom >= p.scrubPassEnd || p.scrubFrom < p.log.logStartOffset) {
        // A pass covers the log as it was when the pass began: data written since is read by the next one.
        if (now - p.scrubPassStartedMs < passEvery) continue;
        p.scrubPassStartedMs = now;
        p.scrubFrom = p.log.logStartOffset;
        p.scrubPassEnd = p.log.nextOffset;
        if (p.scrubFrom >= p.scrubPassEnd) continue;
      }
      const stepBytes = Math.min(budget, SCRUB_STEP_BYTES_MAX);
      let damagedBefore = 0;
      try {
        await p.log.prefetch(p.scrubFrom, stepBytes);
        if (this.stopping || p.removed || p.installing || p.repairing || p.failed) continue;
        damagedBefore = p.log.damagedRanges().length;
        const step = p.log.scrub(p.scrubFrom, stepBytes);
        p.scrubFrom = step.next;
        budget -= step.bytes;
      } catch (e) {
        this.log.warn("scrub read failed", { partition: p.key, offset: p.scrubFrom, error: (e as Error).message });
        p.scrubFrom = p.scrubPassEnd; // this pass ends; the next one starts over
        continue;
      }
      if (p.log.damagedRanges().length > damagedBefore) {
        this.log.warn("scrub found damaged data: repairing it from a peer", { partition: p.key, damaged: p.log.damagedRanges() });
        void this.repair(p);
      }
    }
  }

  /**
   * A follower being sent a snapshot is paused until it answers; if that answer was lost (its connection
   * dropped mid-transfer) nothing else would wake it, so after a while the leader offers the snapshot again.
   */
  private unstickSnapshots(p: Partition): void {
    const now = Date.now();
    for (const pr of p.node.status().progress ?? []) {
      const key = pr.id;
      if (pr.state !== ProgressState.Snapshot) {
        p.snapshotSince.delete(key);
        continue;
      }
      const since = p.snapshotSince.get(key);
      if (since === undefined) p.snapshotSince.set(key, now);
      else if (now - since > SNAPSHOT_STUCK_MS) {
        this.log.warn("snapshot transfer unanswered, offering it again", { partition: p.key, follower: pr.id });
        p.snapshotSince.delete(key);
        p.node.reportSnapshot(pr.id, false);
        this.markDirty(p);
      }
    }
  }

  /**
   * The topic's config as partition-log settings (the broker's segment size unless the topic sets one).
   * The sentinel refuses configs that do not parse; one that still does not is logged and ignored.
   */
  private logSettings(meta: PartitionMeta): PartitionLogSettings {
    let settings: TopicSettings = {};
    try {
      settings = parseTopicConfig(meta.config ?? {});
    } catch (e) {
      this.log.error("topic config ignored", { partition: `${meta.topic}/${meta.partition}`, error: (e as Error).message });
    }
    return {
      segmentBytes: settings.segmentBytes ?? this.opts.segmentBytes,
      segmentMs: settings.segmentMs,
      retentionBytes: settings.retentionBytes,
      retentionMs: settings.retentionMs,
    };
  }

  /**
   * A topic's config, as SetTopicRole carries it, applied to this replica's log (an operator altered it).
   * Returns whether it changed: the caller saves the meta.
   */
  private applyTopicConfig(p: Partition, meta: PartitionMeta, config: Record<string, string>): boolean {
    if (sameConfig(config, meta.config ?? {})) return false;
    meta.config = { ...config };
    const settings = this.logSettings(meta);
    p.log.configure(settings);
    p.retains = retains(settings);
    p.configHash = configHash(meta.config);
    this.statusReports.touch(p);
    this.log.info("topic config changed", { partition: p.key, config: meta.config });
    return true;
  }

  /**
   * Housekeeping every checkpoint interval: retention, repair damaged ranges, re-offer unanswered
   * snapshots, and checkpoint any partition not checkpointed for a long while (which bounds the replay
   * on restart).
   * Trimming the WAL under load is relieveWal's job; a checkpoint costs an fdatasync per partition, so
   * neither runs per partition per second and fsyncs per second do not follow the partition count.
   */
  private async checkpointAll(): Promise<void> {
    const now = Date.now();
    const maxAgeMs = this.opts.checkpointMaxAgeMs ?? CHECKPOINT_MAX_AGE_MS;
    for (const p of [...this.byGroup.values()]) {
      if (this.stopping) return;
      if (p.retains && !p.failed && !p.installing && !p.removed) {
        // Each replica deletes its own old segments, as Kafka's do: offsets never shift, and a reader
        // below the new log start is told the earliest offset there is. Only below a checkpoint: after a
        // restart the group replays its WAL from its last snapshot (without one, from the log's start,
        // which would then be in the wrong place), so a checkpoint comes first when retention is due.
        try {
          const due = p.log.retentionDue(now);
          if (due > p.snapshotIndex) await this.checkpoint(p);
          if (due > 0 && (await p.log.enforceRetention(now, p.snapshotIndex)) > 0) this.statusReports.touch(p);
        } catch (e) {
          this.log.warn("retention failed", { partition: p.key, error: (e as Error).message });
        }
      }
      if (p.log.damagedRanges().length > 0) void this.repair(p);
      if (p.isLeader()) this.unstickSnapshots(p);
      if (p.appliedIndex > p.snapshotIndex && now - p.checkpointedAtMs >= maxAgeMs) await this.checkpoint(p);
    }
  }

  /** Frees the oldest WAL segment once there are several, by checkpointing just the groups it holds. */
  private async relieveWal(): Promise<void> {
    if (this.relieving || this.stopping || this.walFailed) return;
    if (this.wal.stats().segments <= WAL_SEGMENTS_SOFT_MAX) return;
    this.relieving = true;
    try {
      for (const group of this.wal.pinningGroups()) {
        const p = this.byGroup.get(group);
        if (!p) continue;
        // A failed partition cannot checkpoint; one that stays in its group (a lone replica: nothing else
        // holds its entries, so it never drops them) has them written again at the WAL's head instead.
        if (p.failed && !p.left && !p.removed) await this.carry(p);
        else if (p.appliedIndex > p.snapshotIndex) await this.checkpoint(p);
      }
    } finally {
      this.relieving = false;
    }
  }

  private async carry(p: Partition): Promise<void> {
    try {
      if (await this.wal.carry(p.id.group)) this.log.warn("WAL: a failed partition's unreleased entries were written again at its head", { partition: p.key });
    } catch (e) {
      if (this.stopping) return;
      // A StorageError is the WAL's own failure (its write or fdatasync); anything else was reading back.
      if (e instanceof StorageError) this.failWal(e);
      else this.log.warn("WAL: could not write a failed partition's entries again", { partition: p.key, error: (e as Error).message });
    }
  }

  /** Makes the partition log durable and records the group's state in the WAL, which then drops the rest. */
  async checkpoint(p: Partition): Promise<void> {
    // A partition whose log write failed has applied past what its log holds: its WAL records are kept, so
    // a restart applies them again.
    if (p.failed || p.installing || p.removed || p.checkpointing || this.walFailed) return;
    p.checkpointing = true;
    try {
      const index = p.appliedIndex;
      const term = p.node.termAt(index);
      assert(term !== undefined, `checkpoint at ${index}, which the Raft log no longer holds`);
      const meta: SnapshotMeta = { index, term, conf: p.node.confAt(index), data: p.snapshotData() };
      await p.log.flush();
      if (p.removed) return;
      this.wal.setSnapshot(p.id.group, meta);
      await this.wal.sync();
      this.wal.release(p.id.group, index);
      p.snapshotIndex = index;
      p.checkpointedAtMs = Date.now();
    } catch (e) {
      this.log.warn("checkpoint failed", { partition: p.key, error: (e as Error).message });
    } finally {
      p.checkpointing = false;
    }
  }

  /**
   * Drops applied entries from the Raft log in memory (the WAL still holds them on disk). A leader keeps
   * what a follower still needs, unless that follower is so far behind it should get fragments instead.
   * No I/O: a snapshot here is the small state at the applied index plus the partition log itself.
   */
  private compactMemory(): void {
    const every = this.opts.compactEveryEntries ?? COMPACT_EVERY_ENTRIES;
    const everyBytes = this.opts.compactEveryBytes ?? COMPACT_EVERY_BYTES;
    const lagMax = this.opts.compactLagEntries ?? COMPACT_LAG_ENTRIES;
    for (const p of this.byGroup.values()) {
      if (p.installing || p.removed || p.checkpointing) continue;
      const index = p.appliedIndex;
      if ((index - p.node.firstIndex + 1 < every && p.appliedBytesInMemory < everyBytes) || index !== p.node.appliedIndex) continue;
      if (p.isLeader()) {
        const minMatch = Math.min(index, ...(p.node.status().progress ?? []).map((pr) => pr.match));
        if (minMatch < index && index - minMatch <= lagMax) continue;
      }
      p.node.compact(index, p.snapshotData());
      p.appliedBytesInMemory = 0;
    }
  }

  // ---- partitions: create, restore, remove ------------------------------------------------------------

  private partitionDir(topic: string, partition: number): string {
    return join(this.opts.dataDir, topic, String(partition));
  }

  private raftNode(id: PartitionId, voters: NodeId[], learners: NodeId[], restart?: RestartState): RaftNode {
    return new RaftNode(
      {
        id: this.opts.id,
        voters,
        learners,
        electionTicks: this.opts.electionTicks,
        heartbeatTicks: this.opts.heartbeatTicks,
        seed: (this.opts.id * 2654435761 + id.group * 40503 + Date.now()) >>> 0,
        preVote: true,
        checkQuorum: true,
      },
      restart,
    );
  }

  private async openPartition(meta: PartitionMeta, recovered: RecoveredGroup | undefined): Promise<Partition> {
    const id: PartitionId = { topic: meta.topic, partition: meta.partition, group: meta.group };
    for (const [bid, addr] of Object.entries(meta.peers)) this.peers.setAddress(Number(bid), addr);
    const settings = this.logSettings(meta);
    const log = await PartitionLog.open({
      dir: this.partitionDir(meta.topic, meta.partition),
      ...settings,
      fs: this.opts.fs,
      log: storageLogger(this.log.child({ partition: `${meta.topic}/${meta.partition}` })),
    });
    let restart: RestartState | undefined;
    let state = new PartitionState(log.logStartOffset);
    let applied = 0;
    if (holdsState(recovered)) {
      let hs = recovered.hardState ?? { term: 0, vote: 0, commit: 0 };
      const lastTerm = recovered.entries.at(-1)?.term ?? recovered.snapshot?.term ?? 0;
      if (lastTerm > hs.term) {
        // Written by a version that stored entries before the hard state of their round, then torn
        // between the two: the round never completed its fdatasync, so no vote of that term left this
        // broker and the term can move up with no vote.
        this.log.warn("stored term behind stored entries; moving it up", { partition: `${meta.topic}/${meta.partition}`, term: hs.term, lastTerm });
        hs = { term: lastTerm, vote: 0, commit: hs.commit };
      }
      const lastIndex = (recovered.snapshot?.index ?? 0) + recovered.entries.length;
      if (recovered.dropped !== undefined) {
        // The replica left the group when its partition log failed, and dropped its entries (leaveGroup).
        // Keep term and vote (they must never go back) and let the leader send the rest again; until the
        // commit index reaches the newest entry dropped, votes go only to logs that reach it (below).
        this.log.warn("rejoining a group left after a storage fault: entries up to the drop come from the leader again", {
          partition: `${meta.topic}/${meta.partition}`,
          dropped: recovered.dropped.index,
          lastIndex,
        });
      } else if (hs.commit > lastIndex) {
        // Only after corruption: the log lost entries this replica once had committed. Keep term and vote
        // (they must never go back) and let the leader send the rest again; the group is vote-fenced.
        this.log.error("stored commit beyond the recovered log", { partition: `${meta.topic}/${meta.partition}`, commit: hs.commit, lastIndex });
      }
      const afterLostVote = hardStateAfterLostVote(hs, recovered.tornHardStateTerm, this.opts.id);
      if (afterLostVote !== hs) {
        // The torn record may have carried a vote that already left: no second vote in its term. Durable
        // before this replica answers anything, as the next writes overwrite the torn record.
        this.log.warn("hard state lost with the WAL's tail: no vote in its term", {
          partition: `${meta.topic}/${meta.partition}`,
          term: afterLostVote.term,
          storedTerm: hs.term,
        });
        hs = afterLostVote;
        this.wal.setHardState(meta.group, hs);
        await this.wal.sync();
      }
      // Entries this replica may have acknowledged and no longer holds: a torn WAL tail loses the newest
      // one, a drop everything after the snapshot. Votes go only to logs that reach the newest of them,
      // as they would have with the entries still here. A full vote fence instead (no vote until a leader
      // brought the replica up to date) deadlocked a group whose two followers had both dropped theirs:
      // the third replica, holding every entry, could not be elected without one of their votes
      // (fault run, seed 2614, disk-fault).
      const droppedFloor: VoteFloor | undefined = recovered.dropped && {
        ...recovered.dropped,
        lowest: { term: recovered.snapshot?.term ?? 0, index: (recovered.snapshot?.index ?? 0) + 1 },
      };
      const voteFloor = laterVoteFloor(laterVoteFloor(meta.voteFloor, recovered.tornTail), droppedFloor);
      if (voteFloor && !sameVoteFloor(voteFloor, meta.voteFloor)) {
        // Durable before this replica answers any vote.
        meta.voteFloor = voteFloor;
        this.saveMeta(meta);
        this.log.warn("newest entry lost (WAL tail, or dropped on leaving the group): votes only for logs that reach it until settled", {
          partition: `${meta.topic}/${meta.partition}`,
          term: voteFloor.term,
          index: voteFloor.index,
        });
      }
      restart = {
        // A commit-only hard state is not forced to disk (see pump), so the stored one may lag the snapshot.
        hardState: { ...hs, commit: Math.max(recovered.snapshot?.index ?? 0, Math.min(hs.commit, lastIndex)) },
        snapshot: recovered.snapshot,
        entries: recovered.entries,
        applied: recovered.snapshot?.index,
        voteFloor,
      };
      // Entries dropped before any snapshot took the membership with them (the first entries of a group
      // hold it): the group's own, as a new replica is given, until the leader sends those entries again.
      // Without it the replica would count no voter, and take its floor as settled by everyone's evidence.
      if (!recovered.snapshot && recovered.entries.length === 0) restart.conf = { voters: meta.voters, learners: meta.learners };
      if (recovered.snapshot) {
        state = PartitionState.decode(recovered.snapshot.data);
        applied = recovered.snapshot.index;
      }
    }
    if (log.nextOffset < state.nextOffset) {
      // How it came to this is not known yet (one fault run saw it, after kill -9s during a repair): the
      // layout goes into the error, which the set-aside log line and the sentinel's storage fault carry.
      const error = `${id.topic}/${id.partition}: log ends at ${log.nextOffset} before its snapshot (${state.nextOffset}); ${log.layout()}`;
      await log.close();
      throw new Error(error);
    }
    const node = this.raftNode(id, meta.voters, meta.learners, restart);
    const p: Partition = new Partition(id, node, log, state, applied, () => this.markDirty(p), (e) => this.onPartitionStopped(p, e));
    p.retains = retains(settings);
    p.configHash = configHash(meta.config);
    if (meta.voteFloor) this.floored.add(p);
    this.byGroup.set(id.group, p);
    this.ticking.add(p);
    this.statusReports.added(p);
    this.byName.set(p.key, p);
    this.metas.set(id.group, meta);
    return p;
  }

  private async restorePartitions(): Promise<void> {
    if (!existsSync(this.opts.dataDir)) return;
    for (const topic of readdirSync(this.opts.dataDir)) {
      if (topic.startsWith(".")) continue;
      const tdir = join(this.opts.dataDir, topic);
      let parts: string[];
      try {
        parts = readdirSync(tdir);
      } catch {
        continue;
      }
      for (const part of parts) {
        const file = join(tdir, part, META_FILE);
        if (!existsSync(file)) continue;
        let meta: PartitionMeta;
        try {
          meta = parseMeta(readFileSync(file, "utf8"));
        } catch (e) {
          this.putAside(`${topic}/${part}`, `${file}: ${(e as Error).message}`);
          continue;
        }
        let p: Partition;
        try {
          p = await this.openPartition(meta, this.wal.recovered.get(meta.group));
        } catch (e) {
          this.putAside(`${meta.topic}/${meta.partition}`, (e as Error).message);
          continue;
        }
        // Which groups lost records to a mid-log cut is unknown (the damaged record named its group in a
        // header that no longer verifies), so every group on this broker is fenced.
        p.voteFenced = this.wal.cuts.some((c) => c.midLog) || this.wal.recovered.get(meta.group)?.damaged === true;
        this.log.info("partition restored", { partition: p.key, group: meta.group, nextOffset: p.log.nextOffset, applied: p.appliedIndex });
        this.markDirty(p);
      }
    }
  }

  /**
   * One partition whose files could not be read or opened must not keep the broker, and every other
   * partition on it, down. Its files stay as they are; the sentinel sees it missing and assigns it again.
   */
  private putAside(key: string, error: string): void {
    this.setAside.set(key, error);
    this.log.error("partition set aside: its files could not be read; waiting for the sentinel to assign it again", { partition: key, error });
  }

  /**
   * A set-aside partition the map no longer places here (its replica was moved while this broker was down)
   * would never be assigned again, and its storage error would keep this broker from ever being given
   * replicas. Its files are deleted once the sentinel's map places that partition on other brokers only
   * (this broker neither a replica nor a learner of it). A topic the map does not know is left alone: the
   * map may have lost records, and these files may be all that is left of it.
   */
  private async resolveSetAside(): Promise<void> {
    if (this.setAside.size === 0 || this.resolvingSetAside || !this.session || this.stopping) return;
    this.resolvingSetAside = true;
    try {
      for (const key of [...this.setAside.keys()]) {
        const cut = key.lastIndexOf("/");
        const topic = key.slice(0, cut);
        const partition = Number(key.slice(cut + 1));
        let t;
        try {
          t = await this.session.describeTopic(topic);
        } catch {
          return; // no sentinel answers now: asked again later
        }
        const placed = t?.partitionMetadata.find((m) => m.partition === partition);
        if (!t || !placed) continue;
        if (placed.replicas.includes(this.opts.id) || placed.learners.includes(this.opts.id)) continue; // SetTopicRole restores it
        await this.exclusive(key, async () => {
          // Still set aside and not restored meanwhile (SetTopicRole takes the entry off before it opens files).
          if (!this.setAside.has(key) || this.byName.has(key)) return;
          rmSync(this.partitionDir(topic, partition), { recursive: true, force: true });
          this.setAside.delete(key);
          this.log.warn("set-aside partition deleted: the map places it on other brokers", { partition: key, replicas: placed.replicas });
        });
      }
    } finally {
      this.resolvingSetAside = false;
    }
  }

  private saveMeta(meta: PartitionMeta): void {
    writeFileAtomic(realFileLayer, join(this.partitionDir(meta.topic, meta.partition), META_FILE), new TextEncoder().encode(JSON.stringify(meta)));
  }

  /**
   * SetTopicRole, RemoveTopic and the deletion of a set-aside partition change a partition's files, and
   * wait on the disk part-way: one at a time per partition, in arrival order. Interleaved, a removal that
   * had already taken the partition out of byName deleted its directory once its own awaits were over,
   * under a new incarnation a SetTopicRole had created meanwhile (the failover making this broker a
   * replacement): that replica then failed its next segment (ENOENT), and its storage fault kept the
   * broker from taking any replica (fault run 4203).
   */
  private exclusive<T>(key: string, op: () => Promise<T>): Promise<T> {
    const next = (this.lifecycle.get(key) ?? Promise.resolve()).then(op);
    const settled = next.then(
      () => {},
      () => {},
    );
    this.lifecycle.set(key, settled);
    void settled.then(() => {
      if (this.lifecycle.get(key) === settled) this.lifecycle.delete(key);
    });
    return next;
  }

  /** SetTopicRole: create or join the partition's group; a LEADER hint campaigns or asks for a transfer. */
  setTopicRole(req: SetTopicRoleRequest): Promise<Partition> {
    return this.exclusive(`${req.topic}/${req.partition}`, () => this.applyTopicRole(req));
  }

  private async applyTopicRole(req: SetTopicRoleRequest): Promise<Partition> {
    const key = `${req.topic}/${req.partition}`;
    const peers: Record<string, string> = {};
    for (const b of [...req.followers, ...req.learners]) if (b.id !== this.opts.id && b.address) peers[b.id] = b.address;
    if (req.leaderId && req.leaderAddress && req.leaderId !== this.opts.id) peers[req.leaderId] = req.leaderAddress;
    for (const [bid, addr] of Object.entries(peers)) this.peers.setAddress(Number(bid), addr);

    let p = this.byName.get(key);
    if (p && p.id.group !== Number(req.group)) throw new WireError(ErrorCode.INVALID_ARGUMENT, `${key} is group ${p.id.group} here, not ${req.group}`);
    if (!p) {
      const joining = req.role === WireRole.LEARNER;
      const voters = joining ? [] : uniqueSorted([this.opts.id, ...req.followers.map((b) => b.id)]);
      const learners = joining ? [] : uniqueSorted(req.learners.map((b) => b.id).filter((id) => id !== this.opts.id));
      const meta: PartitionMeta = { topic: req.topic, partition: req.partition, group: Number(req.group), voters, learners, peers, config: { ...req.config } };
      const dir = this.partitionDir(req.topic, req.partition);
      const setAside = this.setAside.get(key);
      const recovered = this.wal.recovered.get(meta.group);
      if (setAside !== undefined && holdsState(recovered)) {
        // The group this broker held but could not read its meta for (the WAL knows the group the map
        // names, so the files are this incarnation's): its log and its WAL records (term, vote, entries)
        // are kept, the meta is rebuilt from the sentinel's map. The vote floor the lost meta may have
        // held is unknown, so the replica votes again only once a leader brought it to the commit index.
        // No longer set aside from here on, so resolveSetAside leaves its files alone while they open.
        this.setAside.delete(key);
        try {
          p = await this.openPartition(meta, recovered);
        } catch (e) {
          this.setAside.set(key, setAside);
          throw e;
        }
        p.voteFenced = true;
        this.log.warn("partition restored from the sentinel's map; its meta file was unreadable", { partition: key, group: meta.group, error: setAside });
      } else {
        rmSync(dir, { recursive: true, force: true }); // leftovers of a removed incarnation must not leak in
        this.setAside.delete(key);
        p = await this.openPartition(meta, undefined);
      }
      this.saveMeta(meta);
      this.log.info("partition created", { partition: key, group: meta.group, voters, joining, hint: WireRole[req.role] });
      if (req.role === WireRole.LEADER) p.node.campaign();
      else if (req.leaderId && req.leaderId !== this.opts.id) p.tickHoldoff = FOLLOWER_HOLDOFF_ELECTIONS * this.opts.electionTicks;
    } else {
      const meta = this.metas.get(p.id.group)!;
      const merged = { ...meta.peers, ...peers };
      const peersChanged = JSON.stringify(merged) !== JSON.stringify(meta.peers);
      if (peersChanged) meta.peers = merged;
      const configChanged = !req.keepConfig && this.applyTopicConfig(p, meta, req.config);
      // One atomic write (two fsyncs) for both, not one each.
      if (peersChanged || configChanged) this.saveMeta(meta);
      if (req.role === WireRole.LEADER && !p.isLeader() && p.node.leader !== 0 && p.node.conf.voters.includes(this.opts.id)) {
        p.node.transferLeadership(this.opts.id);
      }
    }
    this.markDirty(p);
    return p;
  }

  /** RemoveTopic: stop the group and delete its data. Idempotent. */
  removePartition(topic: string, partition: number): Promise<void> {
    return this.exclusive(`${topic}/${partition}`, () => this.removeNow(topic, partition));
  }

  private async removeNow(topic: string, partition: number): Promise<void> {
    const p = this.byName.get(`${topic}/${partition}`);
    if (!p) {
      this.removePartitionDir(topic, partition);
      return;
    }
    p.close();
    this.floored.delete(p);
    this.byName.delete(p.key);
    this.byGroup.delete(p.id.group);
    this.ticking.delete(p);
    this.statusReports.removed(p);
    this.metas.delete(p.id.group);
    this.wal.removeGroup(p.id.group);
    await this.wal.sync().catch(() => {});
    await p.log.remove();
    this.removePartitionDir(topic, partition);
    this.log.info("partition removed", { partition: p.key });
  }

  /** Deletes a partition's directory, and its topic's once no partition is left in it. */
  private removePartitionDir(topic: string, partition: number): void {
    rmSync(this.partitionDir(topic, partition), { recursive: true, force: true });
    try {
      rmdirSync(join(this.opts.dataDir, topic)); // not recursive: fails while another partition lives there
    } catch {
      // not empty (another partition of the topic is hosted here), or already gone
    }
  }

  status(p: Partition): PartitionStatus {
    const s = create(PartitionStatusSchema, {
      topic: p.id.topic,
      partition: p.id.partition,
      group: BigInt(p.id.group),
      role: p.node.conf.learners.includes(this.opts.id) ? WireRole.LEARNER : roleToWire(p.node.role),
      term: BigInt(p.node.term),
      leaderId: p.node.leader,
      logEndOffset: BigInt(p.log.nextOffset),
      commitIndex: BigInt(p.node.commitIndex),
      highWatermark: BigInt(p.log.nextOffset),
      voters: p.node.conf.voters,
      learners: p.node.conf.learners,
      appliedIndex: BigInt(p.appliedIndex),
      logStartOffset: BigInt(p.log.logStartOffset),
      // Silent in its group (see leaveGroup, failWal) until a restart: the sentinel may replace it.
      left: p.left || this.walFailed !== undefined,
    });
    for (const pr of p.node.status().progress ?? []) s.matchIndex[pr.id] = BigInt(pr.match);
    Object.assign(s.config, this.metas.get(p.id.group)?.config);
    return s;
  }

  /** Graceful stop: hand leadership away, leave the sentinel, close everything. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const led = [...this.byGroup.values()].filter((p) => p.isLeader());
    for (const p of led) {
      const target = p.node.conf.voters.find((v) => v !== this.opts.id);
      if (target) p.node.transferLeadership(target);
      this.markDirty(p);
    }
    const until = Date.now() + 1_000;
    while (led.some((p) => p.isLeader()) && Date.now() < until) await Bun.sleep(10);
    await this.session?.stop();
    await this.halt();
    this.log.info("stopped");
  }

  /** Stops at once, as a crash would (tests): no hand-over, no goodbye to the sentinel. */
  async crash(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.session?.halt();
    await this.halt();
  }

  private async halt(): Promise<void> {
    clearInterval(this.tickTimer);
    clearInterval(this.checkpointTimer);
    clearInterval(this.compactTimer);
    clearInterval(this.scrubTimer);
    clearInterval(this.setAsideTimer);
    this.server?.stop();
    while (this.rounds.length > 0) await Bun.sleep(1);
    for (const p of this.byGroup.values()) {
      p.close();
      await p.log.close();
    }
    await this.wal?.close();
    this.halted = true;
    this.pool.closeAll();
  }
}

function storageLogger(log: Logger): StorageLogger {
  return (level, message, details) => log[level](message, details);
}

/** Whether a log with these settings ever deletes old segments. */
function retains(s: PartitionLogSettings): boolean {
  return (s.retentionMs ?? -1) >= 0 || (s.retentionBytes ?? -1) >= 0;
}

function sameConfig(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => b[k] === a[k]);
}

function uniqueSorted(ids: number[]): number[] {
  return [...new Set(ids)].sort((a, b) => a - b);
}

export function splitHostPort(address: string): [string, string] {
  const i = address.lastIndexOf(":");
  if (i <= 0) throw new Error(`not a host:port address: ${address}`);
  return [address.slice(0, i).replace(/^\[|\]$/g, ""), address.slice(i + 1)];
}
