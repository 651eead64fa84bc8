// A deterministic simulated cluster: seeded PRNG, virtual time in ticks, a network that drops, delays,
// duplicates, reorders and partitions, and nodes that crash and restart with only what they persisted.
// Every step ends with safety checks; run() ends with a liveness check after healing everything.
import { RaftInvariantError } from "../../src/raft/assert";
import { RaftNode } from "../../src/raft/node";
import { Prng } from "../../src/raft/prng";
import {
  EntryType,
  MessageType,
  ProposalError,
  Role,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type NodeId,
  type RaftConfig,
  type Ready,
  type SnapshotMeta,
  type VoteFloor,
  hardStateAfterLostVote,
  laterVoteFloor,
} from "../../src/raft/types";

export class SimFailure extends Error {
  override name = "SimFailure";
}

export interface SimOptions {
  seed: number;
  steps: number;
  /**
   * Some crashes also lose the node's newest durable record (a torn WAL tail after its fdatasync: an
   * entry, or a hard state change), one damaged node at a time. The node restarts as the broker does:
   * with a vote floor for a lost entry, or in a lost hard state's term having voted.
   */
  lostTails?: boolean;
  /**
   * Nodes drive their readies as the broker does: a node takes the next ready while earlier ones are still
   * being persisted, sends Appends, heartbeats and snapshots and applies committed entries when it takes a
   * ready, and sends everything else, in order, only once that ready and all before it are durable.
   */
  pipeline?: boolean;
}

/** What a driver may send before the ready that produced it is durable (the broker's EARLY set). */
const EARLY = new Set<MessageType>([MessageType.Append, MessageType.Heartbeat, MessageType.Snapshot]);

interface Durable {
  hardState: HardState;
  snapshot: SnapshotMeta | undefined;
  entries: Entry[];
  /** The hard state before the last change of term or vote (what a lost hard state record falls back to). */
  prevHardState?: HardState;
  /** Kept (as the broker keeps it in its partition meta) until the node settles it. */
  voteFloor?: VoteFloor;
  /** The term of a hard state record lost at the last crash, applied at the next restart. */
  lostVoteTerm?: number;
}

interface StateMachine {
  applied: number;
  hash: number;
}

interface SimNode {
  id: NodeId;
  raft: RaftNode | undefined; // undefined while crashed
  durable: Durable;
  sm: StateMachine;
  lastCommit: number; // within this lifetime
  lastTerm: number;
  seenCommit: number; // entries up to here were recorded as committed
  prevConf: ConfState; // membership at the previous check
  pending: Ready[]; // handed out, persist still "in flight" (the node keeps stepping meanwhile), oldest first
  completing: boolean; // inside complete(): a drain from a callback (a dropped snapshot) must not take readies
}

interface InFlight {
  at: number;
  msg: Message;
}

const MAX_MEMBERS = 7;
const linkKey = (from: NodeId, to: NodeId) => from * 65536 + to;
const CLIENT_WINDOW = 32;
const ELECTION_TICKS = 10;
const HEARTBEAT_TICKS = 2;

function mixHash(h: number, term: number, index: number, key: number): number {
  let x = (h ^ Math.imul(term, 0x9e3779b1) ^ Math.imul(index, 0x85ebca77) ^ Math.imul(key, 0xc2b2ae3d)) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
}

function encodeSm(sm: StateMachine): Uint8Array {
  const out = new Uint8Array(8);
  const v = new DataView(out.buffer);
  v.setUint32(0, sm.applied >>> 0);
  v.setUint32(4, sm.hash >>> 0);
  return out;
}

function decodeSm(data: Uint8Array): StateMachine {
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  return { applied: v.getUint32(0), hash: v.getUint32(4) };
}

function keyOf(e: Entry): number {
  const d = e.data;
  if (e.type !== EntryType.Normal || d.length < 4) return e.type === EntryType.ConfChange ? 1_000_000_000 + d[4]! + 256 * d[0]! : 0;
  return ((d[0]! << 24) | (d[1]! << 16) | (d[2]! << 8) | d[3]!) >>> 0;
}

export class Cluster {
  readonly rng: Prng;
  now = 0;
  readonly nodes = new Map<NodeId, SimNode>();
  private queue: InFlight[] = [];
  private blocked = new Set<number>(); // linkKey(from, to)
  private nextId: NodeId;
  private proposalCounter = 1;
  // Oracles shared by all nodes.
  private readonly committedTerm: number[] = [0]; // index -> term of the committed entry
  private readonly appliedHash: number[] = [0]; // index -> state machine hash after applying it
  private readonly leaderOfTerm = new Map<number, NodeId>();
  // Fault knobs, drawn per seed.
  dropRate: number;
  dupRate: number;
  longDelayRate: number;
  faults = true;
  readonly maxInflight: number;
  readonly maxMsgBytes: number;
  /** Chance that a ready's persistence completes only at the next tick, as with an async fsync. */
  readonly asyncPersistRate: number;
  /** Both extensions are on by default; runs also cover each one off. */
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly log: string[] = [];

  /** Draws for lost tails only, so runs without them replay exactly as before. */
  private readonly tornRng: Prng | undefined;

  constructor(readonly opts: SimOptions) {
    this.rng = new Prng(opts.seed);
    this.tornRng = opts.lostTails ? new Prng((opts.seed * 2654435761 + 977) >>> 0) : undefined;
    const n = this.rng.pick([3, 3, 5, 1]);
    this.dropRate = this.rng.pick([0, 0.02, 0.1, 0.25]);
    this.dupRate = this.rng.pick([0, 0.02, 0.1]);
    this.longDelayRate = this.rng.pick([0, 0.01, 0.05]);
    this.maxInflight = this.rng.pick([1, 4, 256]);
    this.maxMsgBytes = this.rng.pick([4, 64, 1 << 20]);
    this.asyncPersistRate = this.rng.pick([0, 0, 0.3, 0.8]);
    const extensions = this.rng.int(6);
    this.preVote = extensions !== 4;
    this.checkQuorum = extensions !== 5;
    const voters: NodeId[] = [];
    for (let i = 1; i <= n; i++) voters.push(i);
    this.nextId = n + 1;
    for (const id of voters) this.addNode(id, voters);
  }

  private config(id: NodeId, voters: NodeId[]): RaftConfig {
    return {
      id,
      voters,
      electionTicks: ELECTION_TICKS,
      heartbeatTicks: HEARTBEAT_TICKS,
      seed: this.opts.seed,
      maxInflightMsgs: this.maxInflight,
      maxMsgBytes: this.maxMsgBytes,
      preVote: this.preVote,
      checkQuorum: this.checkQuorum,
    };
  }

  private addNode(id: NodeId, voters: NodeId[]): SimNode {
    const node: SimNode = {
      id,
      raft: new RaftNode(this.config(id, voters)),
      durable: { hardState: { term: 0, vote: 0, commit: 0 }, snapshot: undefined, entries: [] },
      sm: { applied: 0, hash: 0 },
      lastCommit: 0,
      lastTerm: 0,
      seenCommit: 0,
      prevConf: { voters: [], learners: [] },
      pending: [],
      completing: false,
    };
    this.nodes.set(id, node);
    return node;
  }

  fail(what: string): never {
    throw new SimFailure(`seed ${this.opts.seed} t=${this.now}: ${what}`);
  }

  // ---- the driver loop for one node ----

  private drain(n: SimNode): void {
    const raft = n.raft;
    if (raft === undefined) return;
    const pipeline = this.opts.pipeline === true;
    for (let guard = 0; !n.completing && (pipeline || n.pending.length === 0) && raft.hasReady(); guard++) {
      if (guard > 1000) this.fail(`node ${n.id} never runs out of ready work`);
      const rd = raft.ready();
      if (pipeline && rd.snapshot === undefined) {
        for (const m of rd.messages) if (EARLY.has(m.type)) this.send(m);
        for (const e of rd.committedEntries) this.apply(n, e);
      }
      // Persistence completes in order: a ready behind one in flight waits for it.
      if (n.pending.length > 0 || this.rng.chance(this.asyncPersistRate)) {
        n.pending.push(rd);
        if (!pipeline) break;
        continue;
      }
      this.complete(n, rd);
    }
    this.checkNode(n);
  }

  private complete(n: SimNode, rd: Ready): void {
    const early = this.opts.pipeline === true && rd.snapshot === undefined;
    this.persist(n, rd);
    n.completing = true;
    for (const m of rd.messages) if (!early || !EARLY.has(m.type)) this.send(m);
    n.completing = false;
    if (!early) for (const e of rd.committedEntries) this.apply(n, e);
    n.raft!.advance(rd);
    if (n.durable.voteFloor !== undefined && n.raft!.voteFloor === undefined) {
      n.durable.voteFloor = undefined;
      this.log.push(`t=${this.now} floor settled ${n.id}`);
    }
  }

  private completePending(): void {
    for (const n of this.nodes.values()) {
      if (n.pending.length === 0 || n.raft === undefined) continue;
      // Pipelined, fsyncs finish one at a time: some of the readies in flight complete, the rest wait.
      const count = this.opts.pipeline === true ? 1 + this.rng.int(n.pending.length) : n.pending.length;
      for (const rd of n.pending.splice(0, count)) this.complete(n, rd);
      this.drain(n);
    }
  }

  private persist(n: SimNode, rd: Ready): void {
    const d = n.durable;
    if (rd.snapshot !== undefined) {
      d.snapshot = rd.snapshot;
      d.entries = [];
      const sm = decodeSm(rd.snapshot.data);
      if (sm.applied !== rd.snapshot.index) this.fail(`snapshot data at ${sm.applied} labelled ${rd.snapshot.index}`);
      const expect = this.appliedHash[rd.snapshot.index];
      if (expect !== undefined && expect !== sm.hash) this.fail(`node ${n.id} installs a diverging snapshot at ${sm.applied}`);
      n.sm = sm;
    }
    if (rd.entries.length > 0) {
      const first = rd.entries[0]!.index;
      const base = d.snapshot?.index ?? 0;
      if (first > base + d.entries.length + 1) this.fail(`node ${n.id} persists a gap at ${first}`);
      d.entries.length = Math.max(0, first - base - 1);
      for (const e of rd.entries) d.entries.push(e);
    }
    if (rd.hardState !== undefined) {
      const hs = rd.hardState;
      if (hs.term < d.hardState.term) this.fail(`node ${n.id} persists term going back ${d.hardState.term} -> ${hs.term}`);
      if (hs.term === d.hardState.term && d.hardState.vote !== 0 && hs.vote !== d.hardState.vote) {
        this.fail(`node ${n.id} changes its vote within term ${hs.term}`);
      }
      if (hs.term !== d.hardState.term || hs.vote !== d.hardState.vote) d.prevHardState = { ...d.hardState };
      d.hardState = { ...hs };
    }
  }

  private apply(n: SimNode, e: Entry): void {
    if (e.index !== n.sm.applied + 1) this.fail(`node ${n.id} applies ${e.index} after ${n.sm.applied}`);
    n.sm = { applied: e.index, hash: mixHash(n.sm.hash, e.term, e.index, keyOf(e)) };
    const expect = this.appliedHash[e.index];
    if (expect === undefined) {
      if (e.index !== this.appliedHash.length) this.fail(`apply oracle gap at ${e.index}`);
      this.appliedHash.push(n.sm.hash);
    } else if (expect !== n.sm.hash) {
      this.fail(`state machine safety: node ${n.id} applied a different entry at ${e.index}`);
    }
  }

  // ---- the network ----

  private send(m: Message): void {
    if (this.blocked.has(linkKey(m.from, m.to)) || (this.faults && this.rng.chance(this.dropRate))) {
      this.dropped(m);
      return;
    }
    const copies = this.faults && this.rng.chance(this.dupRate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const long = this.faults && this.rng.chance(this.longDelayRate);
      const delay = 1 + (long ? this.rng.int(4 * ELECTION_TICKS) : this.rng.int(3));
      this.queue.push({ at: this.now + delay, msg: m });
    }
  }

  private dropped(m: Message): void {
    // The driver moves snapshot data itself and knows when that failed.
    if (m.type === MessageType.Snapshot) {
      const sender = this.nodes.get(m.from);
      if (sender?.raft !== undefined) {
        sender.raft.reportSnapshot(m.to, false);
        this.drain(sender);
      }
    }
  }

  private deliverDue(): void {
    if (this.queue.length === 0) return;
    const due: InFlight[] = [];
    const later: InFlight[] = [];
    for (const f of this.queue) (f.at <= this.now ? due : later).push(f);
    this.queue = later;
    for (const { msg } of due) {
      const target = this.nodes.get(msg.to);
      if (target?.raft === undefined || this.blocked.has(linkKey(msg.from, msg.to))) {
        this.dropped(msg);
        continue;
      }
      target.raft.step(msg);
      this.drain(target);
      if (msg.type === MessageType.Snapshot) {
        // The transfer of the snapshot's data finished: the sending driver reports it.
        const sender = this.nodes.get(msg.from);
        if (sender?.raft !== undefined) {
          sender.raft.reportSnapshot(msg.to, true);
          this.drain(sender);
        }
      }
    }
  }

  // ---- faults and client actions ----

  live(): SimNode[] {
    return [...this.nodes.values()].filter((n) => n.raft !== undefined);
  }

  /** The leader with the highest term, if any. */
  leader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const n of this.nodes.values()) {
      if (n.raft?.role !== Role.Leader) continue;
      if (best === undefined || n.raft.term > best.raft!.term) best = n;
    }
    return best;
  }

  crash(n: SimNode): void {
    // One damaged replica is a minority only among three voters or more.
    const voters = n.raft?.conf.voters.length ?? 0;
    n.raft = undefined;
    n.pending = []; // its persistence never finished
    this.log.push(`t=${this.now} crash ${n.id}`);
    const othersDamaged = [...this.nodes.values()].some((o) => o !== n && (o.durable.voteFloor !== undefined || o.durable.lostVoteTerm !== undefined));
    if (this.tornRng !== undefined && voters >= 3 && !othersDamaged) this.loseNewestRecord(n);
  }

  /** The newest durable record is gone (see SimOptions.lostTails). */
  private loseNewestRecord(n: SimNode): void {
    const d = n.durable;
    const last = d.entries.at(-1);
    const lastTerm = last?.term ?? d.snapshot?.term ?? 0;
    if (last !== undefined && this.tornRng!.chance(0.6)) {
      d.entries.pop();
      d.voteFloor = laterVoteFloor(d.voteFloor, { term: last.term, index: last.index });
      this.log.push(`t=${this.now} ${n.id} lost entry ${last.index}@${last.term}`);
    } else if (d.prevHardState !== undefined && d.prevHardState.term >= lastTerm) {
      d.lostVoteTerm = Math.max(d.lostVoteTerm ?? 0, d.hardState.term);
      this.log.push(`t=${this.now} ${n.id} lost hard state ${d.hardState.term}/${d.hardState.vote}`);
      d.hardState = d.prevHardState;
      d.prevHardState = undefined;
    }
  }

  restart(n: SimNode): void {
    const d = n.durable;
    if (d.lostVoteTerm !== undefined) {
      // As the broker does: that term, voted for itself, written durably before anything else.
      d.hardState = hardStateAfterLostVote(d.hardState, d.lostVoteTerm, n.id);
      d.lostVoteTerm = undefined;
    }
    const lastIndex = (d.snapshot?.index ?? 0) + d.entries.length;
    const commit = Math.max(d.snapshot?.index ?? 0, Math.min(d.hardState.commit, lastIndex));
    n.raft = new RaftNode(this.config(n.id, []), {
      hardState: { ...d.hardState, commit },
      snapshot: d.snapshot,
      entries: d.entries.slice(),
      voteFloor: d.voteFloor,
    });
    n.sm = d.snapshot !== undefined ? decodeSm(d.snapshot.data) : { applied: 0, hash: 0 };
    n.lastCommit = n.raft.commitIndex;
    n.seenCommit = Math.max(n.seenCommit, 0);
    this.log.push(`t=${this.now} restart ${n.id}`);
    this.drain(n);
  }

  propose(count: number): void {
    const l = this.leader();
    if (l === undefined) return;
    // Clients keep a bounded window of unacknowledged writes.
    if (l.raft!.lastIndex - l.raft!.commitIndex > CLIENT_WINDOW) return;
    const batch: Uint8Array[] = [];
    for (let i = 0; i < count; i++) {
      const d = new Uint8Array(4);
      new DataView(d.buffer).setUint32(0, this.proposalCounter++);
      batch.push(d);
    }
    try {
      l.raft!.proposeBatch(batch);
    } catch (e) {
      if (!(e instanceof ProposalError)) throw e;
    }
    this.drain(l);
  }

  private randomConfChange(): void {
    const l = this.leader();
    if (l === undefined) return;
    const conf = l.raft!.conf;
    const members = conf.voters.length + conf.learners.length;
    // Promotions are drawn more often: a learner must be promoted before voters can be removed.
    const choice = this.rng.pick([0, 1, 1, 2, 3]);
    try {
      if (choice === 0 && members < MAX_MEMBERS) {
        const id = this.nextId++;
        l.raft!.proposeConfChange({ type: "add-learner", node: id });
        this.addNode(id, []);
        this.log.push(`t=${this.now} add-learner ${id}`);
      } else if (choice === 1 && conf.learners.length > 0) {
        const id = this.rng.pick(conf.learners);
        l.raft!.proposeConfChange({ type: "promote", node: id });
        this.log.push(`t=${this.now} promote ${id}`);
      } else if (choice === 2 && conf.voters.length > 2) {
        const id = this.rng.pick(conf.voters);
        l.raft!.proposeConfChange({ type: "remove", node: id });
        this.log.push(`t=${this.now} remove voter ${id}`);
      } else if (choice === 3 && conf.learners.length > 0) {
        const id = this.rng.pick(conf.learners);
        l.raft!.proposeConfChange({ type: "remove", node: id });
        this.log.push(`t=${this.now} remove learner ${id}`);
      }
    } catch (e) {
      if (!(e instanceof ProposalError)) throw e;
    }
    this.drain(l);
  }

  private randomFault(): void {
    const all = [...this.nodes.values()];
    const r = this.rng.float();
    if (r < 0.15) {
      const live = this.live();
      const crashed = all.length - live.length;
      if (live.length > 0 && crashed < Math.floor((all.length - 1) / 2)) this.crash(this.rng.pick(live));
    } else if (r < 0.4) {
      const down = all.filter((n) => n.raft === undefined);
      if (down.length > 0) this.restart(this.rng.pick(down));
    } else if (r < 0.5) {
      const a = this.rng.pick(all).id;
      for (const b of all) if (b.id !== a) this.blocked.add(linkKey(a, b.id)).add(linkKey(b.id, a));
      this.log.push(`t=${this.now} isolate ${a}`);
    } else if (r < 0.6) {
      const a = this.rng.pick(all).id;
      const b = this.rng.pick(all).id;
      if (a !== b) this.blocked.add(linkKey(a, b));
      this.log.push(`t=${this.now} block ${a}>${b}`);
    } else if (r < 0.8) {
      this.blocked.clear();
      this.log.push(`t=${this.now} heal`);
    } else if (r < 0.9) {
      this.randomConfChange();
    } else {
      const l = this.leader();
      const live = this.live();
      if (l !== undefined && live.length > 0) {
        const via = this.rng.pick(live);
        const to = this.rng.pick(l.raft!.conf.voters);
        via.raft!.transferLeadership(to);
        this.log.push(`t=${this.now} transfer to ${to} via ${via.id}`);
        this.drain(via);
      }
    }
  }

  private compactSome(): void {
    const live = this.live();
    if (live.length === 0) return;
    const n = this.rng.pick(live);
    const raft = n.raft!;
    if (raft.appliedIndex <= raft.firstIndex) return;
    // Pipelined, the state machine may be ahead of what advance() acknowledged: no snapshot of it then.
    if (n.sm.applied !== raft.appliedIndex) return;
    // The state machine holds exactly `applied`, so that is where its snapshot is.
    const meta = raft.compact(raft.appliedIndex, encodeSm(n.sm));
    if (n.sm.applied !== meta.index) this.fail(`node ${n.id} compacted at ${meta.index} but applied ${n.sm.applied}`);
    n.durable.snapshot = meta;
    const base = n.durable.entries.findIndex((e) => e.index > meta.index);
    n.durable.entries = base < 0 ? [] : n.durable.entries.slice(base);
  }

  step(): void {
    this.now++;
    this.completePending();
    if (this.faults && this.rng.chance(0.04)) this.randomFault();
    if (this.faults && this.rng.chance(0.02)) this.randomConfChange();
    if (this.rng.chance(0.3)) this.propose(1 + this.rng.int(3));
    if (this.rng.chance(0.03)) this.compactSome();
    for (const n of this.nodes.values()) {
      if (n.raft === undefined) continue;
      n.raft.tick();
      this.drain(n);
    }
    this.deliverDue();
  }

  // ---- safety checks ----

  private checkNode(n: SimNode): void {
    const raft = n.raft!;
    if (raft.commitIndex < n.lastCommit) this.fail(`node ${n.id} commit went back ${n.lastCommit} -> ${raft.commitIndex}`);
    if (raft.term < n.lastTerm && n.lastCommit >= 0 && raft.term < n.durable.hardState.term) {
      this.fail(`node ${n.id} term went back`);
    }
    n.lastCommit = raft.commitIndex;
    n.lastTerm = raft.term;
    // Record newly committed entries and check they agree with what others committed.
    for (let i = Math.max(raft.firstIndex, n.seenCommit + 1); i <= raft.commitIndex; i++) {
      const term = raft.termAt(i)!;
      const known = this.committedTerm[i];
      if (known === undefined) {
        if (i !== this.committedTerm.length) this.fail(`commit oracle gap at ${i}`);
        this.committedTerm.push(term);
        // Term 1 holds the bootstrap membership, written identically by every founder.
        if (term > 1) this.checkDurableMajority(n.prevConf, raft.conf, i, term);
      } else if (known !== term) {
        this.fail(`node ${n.id} committed term ${term} at ${i}, others committed term ${known}`);
      }
    }
    n.seenCommit = Math.max(n.seenCommit, raft.commitIndex);
    n.prevConf = raft.conf;
    if (raft.role === Role.Leader) {
      const holder = this.leaderOfTerm.get(raft.term);
      if (holder === undefined) {
        this.leaderOfTerm.set(raft.term, n.id);
        this.checkLeaderCompleteness(n);
      } else if (holder !== n.id) {
        this.fail(`election safety: ${holder} and ${n.id} both lead term ${raft.term}`);
      }
    }
  }

  /** A committed entry is on the disks of a majority: losing any minority cannot lose it. */
  private checkDurableMajority(before: ConfState, after: ConfState, index: number, term: number): void {
    // The commit was decided under one of these two memberships (one change at a time).
    const voters = new Set([...before.voters, ...after.voters]);
    let copies = 0;
    for (const v of voters) {
      const d = this.nodes.get(v)?.durable;
      if (d === undefined) continue;
      const base = d.snapshot?.index ?? 0;
      if (base >= index || d.entries[index - base - 1]?.term === term) copies++;
      // A copy lost with a torn tail still counts while the node's vote floor stands for it (it votes as
      // if it held the entry); the lost tail itself is the fault, not a commit without a majority.
      else if (d.voteFloor !== undefined && (d.voteFloor.term > term || (d.voteFloor.term === term && d.voteFloor.index >= index))) copies++;
    }
    const majority = (k: number) => Math.floor(k / 2) + 1;
    const need = before.voters.length === 0 ? majority(after.voters.length) : Math.min(majority(before.voters.length), majority(after.voters.length));
    if (copies < need) this.fail(`entry ${index} committed with ${copies} durable copies among voters ${[...voters]}`);
  }

  private checkLeaderCompleteness(n: SimNode): void {
    const raft = n.raft!;
    for (let i = raft.firstIndex; i < this.committedTerm.length; i++) {
      if (raft.termAt(i) !== this.committedTerm[i]) {
        this.fail(`leader completeness: leader ${n.id} of term ${raft.term} lacks committed entry ${i}`);
      }
    }
    if (raft.firstIndex - 1 > this.committedTerm.length - 1 && raft.firstIndex - 1 > 0) {
      // Its snapshot is past what anyone saw committed: fine only if it was committed.
      this.fail(`leader ${n.id} has a snapshot at ${raft.firstIndex - 1} beyond the committed prefix`);
    }
  }

  /** Log matching: where two logs hold an entry of the same index and term, all before it match. */
  checkLogMatching(): void {
    const live = this.live();
    for (let a = 0; a < live.length; a++) {
      for (let b = a + 1; b < live.length; b++) {
        const x = live[a]!.raft!;
        const y = live[b]!.raft!;
        const lo = Math.max(x.firstIndex, y.firstIndex);
        let matched = false;
        for (let i = Math.min(x.lastIndex, y.lastIndex); i >= lo; i--) {
          const ex = x.entryAt(i)!;
          const ey = y.entryAt(i)!;
          if (ex.term === ey.term) {
            matched = true;
            if (keyOf(ex) !== keyOf(ey)) this.fail(`log matching: ${x.id} and ${y.id} differ in data at ${i}`);
          } else if (matched) {
            this.fail(`log matching: ${x.id} and ${y.id} agree after ${i} but differ at ${i}`);
          }
        }
      }
    }
  }

  // ---- liveness ----

  /** Heal everything and require a leader and a committed, everywhere-applied proposal within a bound. */
  checkLiveness(boundTicks: number): number {
    this.faults = false;
    this.blocked.clear();
    for (const n of this.nodes.values()) if (n.raft === undefined) this.restart(n);
    const start = this.now;
    let marker: { leader: NodeId; index: number; term: number } | undefined;
    while (this.now - start < boundTicks) {
      this.step();
      const l = this.leader();
      if (l === undefined) continue;
      const raft = l.raft!;
      if (marker === undefined || marker.term !== raft.term || marker.leader !== l.id) {
        try {
          marker = { leader: l.id, index: raft.propose(new Uint8Array([0xff, 0xff, 0xff, 0xff])), term: raft.term };
        } catch (e) {
          if (!(e instanceof ProposalError)) throw e;
          continue;
        }
        this.drain(l);
        continue;
      }
      const committed = this.committedTerm[marker.index];
      if (committed !== undefined && committed !== marker.term) {
        // A stale leader's proposal (one that never learnt of a later term, e.g. a removed node that led
        // once as a caretaker) was replaced by a later leader's entry: propose again on whoever leads.
        marker = undefined;
        continue;
      }
      const conf = raft.conf;
      const members = [...conf.voters, ...conf.learners];
      if (members.every((id) => (this.nodes.get(id)?.raft?.appliedIndex ?? 0) >= marker!.index)) return this.now - start;
    }
    this.fail(`liveness: no proposal applied by every member within ${boundTicks} ticks after healing`);
  }

  run(): void {
    for (let i = 0; i < this.opts.steps; i++) {
      this.step();
      if (i % 32 === 0) this.checkLogMatching();
    }
    this.checkLogMatching();
    // A member that was cut off may have to catch up a backlog one small Append at a time (the
    // tightest configurations send one entry per message with one message in flight).
    let lastIndex = 0;
    let minApplied = Infinity;
    for (const n of this.nodes.values()) {
      lastIndex = Math.max(lastIndex, n.raft?.lastIndex ?? n.durable.entries.length);
      minApplied = Math.min(minApplied, n.sm.applied);
    }
    this.checkLiveness(60 * ELECTION_TICKS + 4 * Math.max(0, lastIndex - minApplied));
    this.checkLogMatching();
  }
}

export interface SeedResult {
  seed: number;
  ok: boolean;
  error?: string;
  ticks: number;
}

export function runSeed(seed: number, steps: number, lostTails = false, pipeline = false): SeedResult {
  const c = new Cluster({ seed, steps, lostTails, pipeline });
  try {
    c.run();
    return { seed, ok: true, ticks: c.now };
  } catch (e) {
    if (e instanceof SimFailure || e instanceof RaftInvariantError) {
      return { seed, ok: false, error: `${e.name}: ${e.message}`, ticks: c.now };
    }
    throw e;
  }
}
