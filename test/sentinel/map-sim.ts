// A deterministic simulation of three sentinels replicating the cluster map through the Raft core: seeded
// PRNG, virtual time in ticks, a network that drops, duplicates, delays and reorders, nodes that crash and
// restart from what they persisted, and log compaction into map snapshots (so followers also catch up by
// installing one). Map commands are drawn at random from the leader's current view of the map.
// After every step: at equal applied indexes all nodes hold the same map (compared as snapshot() JSON), and
// a Raft group id, once handed out, never names a different partition. After healing, all maps converge.
import { RaftNode } from "../../src/raft/node";
import { Prng } from "../../src/raft/prng";
import { EntryType, MessageType, ProposalError, Role, type Entry, type HardState, type Message, type NodeId, type Ready, type SnapshotMeta } from "../../src/raft/types";
import { ClusterMap, decodeCommand, encodeCommand, type MapCommand, type MapSnapshot } from "../../src/sentinel/cluster-map";

export class MapSimFailure extends Error {
  override name = "MapSimFailure";
}

interface Durable {
  hardState: HardState;
  snapshot: SnapshotMeta | undefined;
  entries: Entry[];
}

interface SimSentinel {
  id: NodeId;
  raft: RaftNode | undefined; // undefined while crashed
  durable: Durable;
  map: ClusterMap;
  applied: number; // index the map holds
}

interface InFlight {
  at: number;
  msg: Message;
}

const VOTERS: NodeId[] = [1, 2, 3];
const ELECTION_TICKS = 10;
const HEARTBEAT_TICKS = 2;
const MAX_BROKERS = 6;
const TOPIC_NAMES = ["orders", "events", "logs", "audit"];
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class MapSim {
  readonly rng: Prng;
  now = 0;
  readonly nodes: SimSentinel[] = [];
  private queue: InFlight[] = [];
  private isolated: NodeId | undefined;
  // Oracles shared by every node.
  private readonly mapAt: string[] = []; // applied index -> snapshot() JSON after applying it
  private readonly groupOwner = new Map<number, string>(); // group id -> "topic@createdEpoch/partition"
  readonly dropRate: number;
  readonly dupRate: number;
  readonly longDelayRate: number;
  readonly log: string[] = [];
  proposals = 0;
  installs = 0;

  constructor(readonly seed: number) {
    this.rng = new Prng(seed);
    this.dropRate = this.rng.pick([0, 0.05, 0.2]);
    this.dupRate = this.rng.pick([0, 0.05]);
    this.longDelayRate = this.rng.pick([0, 0.02, 0.08]);
    for (const id of VOTERS) {
      const node: SimSentinel = {
        id,
        raft: undefined,
        durable: { hardState: { term: 0, vote: 0, commit: 0 }, snapshot: undefined, entries: [] },
        map: new ClusterMap(),
        applied: 0,
      };
      node.raft = new RaftNode(this.config(id));
      this.nodes.push(node);
    }
    this.mapAt[0] = JSON.stringify(new ClusterMap().snapshot());
  }

  private config(id: NodeId) {
    return { id, voters: VOTERS, electionTicks: ELECTION_TICKS, heartbeatTicks: HEARTBEAT_TICKS, seed: this.seed, maxMsgBytes: 512 };
  }

  fail(what: string): never {
    throw new MapSimFailure(`seed ${this.seed} t=${this.now}: ${what}`);
  }

  // ---- the driver loop of one sentinel (the order raft-map-store.ts follows) ----

  private drain(n: SimSentinel): void {
    const raft = n.raft;
    if (raft === undefined) return;
    for (let guard = 0; raft.hasReady(); guard++) {
      if (guard > 1000) this.fail(`node ${n.id} never runs out of ready work`);
      const rd = raft.ready();
      this.persist(n, rd);
      for (const m of rd.messages) this.send(m);
      if (rd.snapshot !== undefined && rd.snapshot.data.length > 0) this.install(n, rd.snapshot);
      for (const e of rd.committedEntries) this.apply(n, e);
      raft.advance(rd);
    }
  }

  private persist(n: SimSentinel, rd: Ready): void {
    const d = n.durable;
    if (rd.snapshot !== undefined) {
      d.snapshot = rd.snapshot;
      d.entries = [];
    }
    if (rd.entries.length > 0) {
      const base = d.snapshot?.index ?? 0;
      d.entries.length = Math.max(0, rd.entries[0]!.index - base - 1);
      for (const e of rd.entries) d.entries.push(e);
    }
    if (rd.hardState !== undefined) d.hardState = { ...rd.hardState };
  }

  private install(n: SimSentinel, meta: SnapshotMeta): void {
    const snap = JSON.parse(decoder.decode(meta.data)) as MapSnapshot;
    n.map.restore(snap);
    n.applied = meta.index;
    this.installs++;
    this.checkMap(n);
  }

  private apply(n: SimSentinel, e: Entry): void {
    if (e.index !== n.applied + 1) this.fail(`node ${n.id} applies ${e.index} after ${n.applied}`);
    // Noops and membership entries do not touch the map, but still advance the applied index.
    if (e.type === EntryType.Normal && e.data.length > 0) n.map.apply(decodeCommand(e.data));
    n.applied = e.index;
    this.checkMap(n);
  }

  /** The map at an applied index is the same on every node, and group ids are never reused. */
  private checkMap(n: SimSentinel): void {
    const snap = n.map.snapshot();
    const json = JSON.stringify(snap);
    const known = this.mapAt[n.applied];
    if (known === undefined) this.mapAt[n.applied] = json;
    else if (known !== json) this.fail(`node ${n.id} holds a different map at applied index ${n.applied}:\n${json}\nvs\n${known}`);
    const seen = new Set<number>();
    for (const t of snap.topics) {
      for (const p of t.partitions) {
        if (seen.has(p.group)) this.fail(`group ${p.group} used twice in one map`);
        seen.add(p.group);
        if (p.group >= snap.nextGroup) this.fail(`group ${p.group} at or beyond nextGroup ${snap.nextGroup}`);
        const owner = `${t.name}@${t.createdEpoch}/${p.partition}`;
        const was = this.groupOwner.get(p.group);
        if (was === undefined) this.groupOwner.set(p.group, owner);
        else if (was !== owner) this.fail(`group ${p.group} reused: was ${was}, now ${owner}`);
      }
    }
  }

  // ---- the network ----

  private cut(a: NodeId, b: NodeId): boolean {
    return this.isolated !== undefined && a !== b && (a === this.isolated || b === this.isolated);
  }

  private send(m: Message): void {
    if (this.cut(m.from, m.to) || this.rng.chance(this.dropRate)) {
      this.dropped(m);
      return;
    }
    const copies = this.rng.chance(this.dupRate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const delay = 1 + (this.rng.chance(this.longDelayRate) ? this.rng.int(3 * ELECTION_TICKS) : this.rng.int(3));
      this.queue.push({ at: this.now + delay, msg: m });
    }
  }

  private dropped(m: Message): void {
    if (m.type !== MessageType.Snapshot) return;
    const sender = this.node(m.from);
    if (sender.raft !== undefined) {
      sender.raft.reportSnapshot(m.to, false);
      this.drain(sender);
    }
  }

  private deliverDue(): void {
    const due = this.queue.filter((f) => f.at <= this.now);
    this.queue = this.queue.filter((f) => f.at > this.now);
    for (const { msg } of due) {
      const target = this.node(msg.to);
      if (target.raft === undefined || this.cut(msg.from, msg.to)) {
        this.dropped(msg);
        continue;
      }
      target.raft.step(msg);
      this.drain(target);
      if (msg.type === MessageType.Snapshot) {
        const sender = this.node(msg.from);
        if (sender.raft !== undefined) {
          sender.raft.reportSnapshot(msg.to, true);
          this.drain(sender);
        }
      }
    }
  }

  private node(id: NodeId): SimSentinel {
    const n = this.nodes[id - 1];
    if (n === undefined) this.fail(`no node ${id}`);
    return n;
  }

  // ---- faults ----

  leader(): SimSentinel | undefined {
    let best: SimSentinel | undefined;
    for (const n of this.nodes) {
      if (n.raft?.role !== Role.Leader) continue;
      if (best === undefined || n.raft.term > best.raft!.term) best = n;
    }
    return best;
  }

  private crash(n: SimSentinel): void {
    n.raft = undefined;
    this.log.push(`t=${this.now} crash ${n.id}`);
  }

  private restart(n: SimSentinel): void {
    const d = n.durable;
    n.raft = new RaftNode(this.config(n.id), { hardState: { ...d.hardState }, snapshot: d.snapshot, entries: d.entries.slice() });
    // The map comes back from the last snapshot; committed entries after it are delivered again.
    n.map = new ClusterMap();
    n.applied = 0;
    if (d.snapshot !== undefined && d.snapshot.data.length > 0) {
      n.map.restore(JSON.parse(decoder.decode(d.snapshot.data)) as MapSnapshot);
      n.applied = d.snapshot.index;
    }
    this.checkMap(n);
    this.log.push(`t=${this.now} restart ${n.id}`);
    this.drain(n);
  }

  private randomFault(): void {
    const r = this.rng.float();
    const down = this.nodes.filter((n) => n.raft === undefined);
    if (r < 0.3) {
      if (down.length === 0) this.crash(this.rng.pick(this.nodes));
    } else if (r < 0.6) {
      if (down.length > 0) this.restart(this.rng.pick(down));
    } else if (r < 0.8) {
      this.isolated = this.rng.pick(VOTERS);
      this.log.push(`t=${this.now} isolate ${this.isolated}`);
    } else {
      this.isolated = undefined;
      this.log.push(`t=${this.now} heal`);
    }
  }

  private compactSome(): void {
    const n = this.rng.pick(this.nodes);
    const raft = n.raft;
    if (raft === undefined || raft.appliedIndex <= raft.firstIndex) return;
    if (raft.appliedIndex !== n.applied) this.fail(`node ${n.id}: raft applied ${raft.appliedIndex}, map holds ${n.applied}`);
    const meta = raft.compact(n.applied, encoder.encode(JSON.stringify(n.map.snapshot())));
    n.durable.snapshot = meta;
    n.durable.entries = n.durable.entries.filter((e) => e.index > meta.index);
  }

  // ---- map commands, drawn from the leader's view ----

  private randomCommand(view: ClusterMap): MapCommand {
    const brokers = view.allBrokers().map((b) => b.id);
    const topics = view.allTopics();
    const r = this.rng.float();
    if (r < 0.2 || brokers.length < 3) {
      const id = 1 + this.rng.int(MAX_BROKERS);
      return { type: "register-broker", id, address: `127.0.0.1:${9000 + id}`, fsyncPolicy: "always", version: "sim", capacity: 0 };
    }
    if (r < 0.45) {
      const rf = 1 + this.rng.int(3);
      const partitions = 1 + this.rng.int(3);
      const placement: number[][] = [];
      for (let p = 0; p < partitions; p++) placement.push(this.distinct(brokers, rf));
      return { type: "create-topic", name: this.rng.pick(TOPIC_NAMES), replicationFactor: rf, config: {}, placement };
    }
    if (r < 0.6) return { type: "delete-topic", name: this.rng.pick(TOPIC_NAMES) };
    if (r < 0.85 && topics.length > 0) {
      const t = this.rng.pick(topics);
      const p = this.rng.pick(t.partitions);
      const set = this.distinct(brokers, Math.min(brokers.length, 1 + this.rng.int(4)));
      const learners = set.length > 1 && this.rng.chance(0.3) ? set.splice(0, 1) : [];
      // Sometimes a stale epoch: the map must refuse it the same way everywhere.
      const expectEpoch = this.rng.chance(0.8) ? p.epoch : p.epoch - 1;
      return { type: "set-replicas", topic: t.name, partition: p.partition, replicas: set, learners, expectEpoch };
    }
    if (r < 0.92) return { type: "unregister-broker", id: 1 + this.rng.int(MAX_BROKERS) };
    return { type: "next-producer-id" };
  }

  private distinct(from: number[], k: number): number[] {
    const pool = from.slice();
    const out: number[] = [];
    while (out.length < k && pool.length > 0) out.push(pool.splice(this.rng.int(pool.length), 1)[0]!);
    return out;
  }

  private propose(): void {
    const l = this.leader();
    if (l === undefined || l.raft!.lastIndex - l.raft!.commitIndex > 16) return;
    try {
      l.raft!.propose(encodeCommand(this.randomCommand(l.map)));
      this.proposals++;
    } catch (e) {
      if (!(e instanceof ProposalError)) throw e;
    }
    this.drain(l);
  }

  step(faults: boolean): void {
    this.now++;
    if (faults && this.rng.chance(0.03)) this.randomFault();
    if (this.rng.chance(0.35)) this.propose();
    if (this.rng.chance(0.04)) this.compactSome();
    for (const n of this.nodes) {
      if (n.raft === undefined) continue;
      n.raft.tick();
      this.drain(n);
    }
    this.deliverDue();
  }

  /** Heal, restart everyone, commit a marker on the leader, and wait until every node applied it. */
  converge(boundTicks: number): MapSnapshot {
    this.isolated = undefined;
    for (const n of this.nodes) if (n.raft === undefined) this.restart(n);
    const start = this.now;
    let marker: { leader: NodeId; term: number; index: number } | undefined;
    while (this.now - start < boundTicks) {
      this.step(false);
      const l = this.leader();
      if (l === undefined) continue;
      if (marker === undefined || marker.leader !== l.id || marker.term !== l.raft!.term) {
        try {
          marker = { leader: l.id, term: l.raft!.term, index: l.raft!.propose(encodeCommand({ type: "next-producer-id" })) };
        } catch (e) {
          if (!(e instanceof ProposalError)) throw e;
        }
        this.drain(l);
        continue;
      }
      const target = Math.max(marker.index, l.raft!.commitIndex);
      if (this.nodes.every((n) => n.applied >= target && n.applied === l.applied)) {
        const maps = this.nodes.map((n) => JSON.stringify(n.map.snapshot()));
        if (new Set(maps).size !== 1) this.fail(`maps differ after healing at applied ${l.applied}`);
        return l.map.snapshot();
      }
    }
    this.fail(`no convergence within ${boundTicks} ticks after healing`);
  }

  run(steps: number): MapSnapshot {
    for (let i = 0; i < steps; i++) this.step(true);
    return this.converge(100 * ELECTION_TICKS);
  }
}
