// A tiny synchronous network for scripted scenarios: every node's ready is drained after each event,
// messages queue in order, and a test can cut links or intercept messages.
import { RaftNode } from "../../src/raft/node";
import {
  EntryType,
  type Entry,
  type HardState,
  type Message,
  type NodeId,
  type RaftConfig,
  type Ready,
  type RestartState,
  type SnapshotMeta,
} from "../../src/raft/types";

export interface Stored {
  hardState: HardState;
  snapshot?: SnapshotMeta;
  entries: Entry[];
  applied: Entry[];
  readies: Ready[];
}

export function config(id: NodeId, voters: NodeId[], extra: Partial<RaftConfig> = {}): RaftConfig {
  return { id, voters, electionTicks: 10, heartbeatTicks: 1, seed: 42, ...extra };
}

/** Normal entries with the given terms at indexes 1.., as a restarted node's log. */
export function entriesWithTerms(terms: number[]): Entry[] {
  return terms.map((term, i) => ({ term, index: i + 1, type: EntryType.Normal, data: new Uint8Array([i]) }));
}

export function restartWithLog(terms: number[], term: number, voters: NodeId[], commit = 0): RestartState {
  return {
    hardState: { term, vote: 0, commit },
    entries: entriesWithTerms(terms),
    conf: { voters, learners: [] },
  };
}

export class Net {
  readonly nodes = new Map<NodeId, RaftNode>();
  readonly stored = new Map<NodeId, Stored>();
  queue: Message[] = [];
  /** Return false to drop a message. */
  filter: (m: Message) => boolean = () => true;
  delivered: Message[] = [];

  add(node: RaftNode): RaftNode {
    this.nodes.set(node.id, node);
    this.stored.set(node.id, { hardState: { term: 0, vote: 0, commit: 0 }, entries: [], applied: [], readies: [] });
    this.drain(node.id);
    return node;
  }

  static of(ids: NodeId[], extra: Partial<RaftConfig> = {}): Net {
    const net = new Net();
    for (const id of ids) net.add(new RaftNode(config(id, ids, extra)));
    return net;
  }

  node(id: NodeId): RaftNode {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  drain(id: NodeId): void {
    const n = this.node(id);
    const s = this.stored.get(id)!;
    while (n.hasReady()) {
      const rd = n.ready();
      s.readies.push(rd);
      if (rd.snapshot !== undefined) {
        s.snapshot = rd.snapshot;
        s.entries = [];
      }
      if (rd.entries.length > 0) {
        const base = s.snapshot?.index ?? 0;
        s.entries.length = rd.entries[0]!.index - base - 1;
        s.entries.push(...rd.entries);
      }
      if (rd.hardState !== undefined) s.hardState = rd.hardState;
      this.queue.push(...rd.messages);
      s.applied.push(...rd.committedEntries);
      n.advance(rd);
    }
  }

  /** Deliver queued messages (and what they cause) until the network is quiet. */
  deliverAll(maxMessages = 100_000): void {
    for (let i = 0; this.queue.length > 0; i++) {
      if (i > maxMessages) throw new Error("network never quiets down");
      this.deliverOne();
    }
  }

  deliverOne(): void {
    const m = this.queue.shift()!;
    const target = this.nodes.get(m.to);
    if (target === undefined || !this.filter(m)) return;
    this.delivered.push(m);
    target.step(m);
    this.drain(m.to);
  }

  tick(id: NodeId, times = 1): void {
    for (let i = 0; i < times; i++) {
      this.node(id).tick();
      this.drain(id);
    }
  }

  tickAll(times = 1): void {
    for (let i = 0; i < times; i++) {
      for (const id of this.nodes.keys()) this.tick(id);
      this.deliverAll();
    }
  }

  /** Cut every link to and from `id`. */
  isolate(id: NodeId): void {
    this.filter = (m) => m.from !== id && m.to !== id;
  }

  heal(): void {
    this.filter = () => true;
  }

  elect(id: NodeId): void {
    this.node(id).campaign();
    this.drain(id);
    this.deliverAll();
  }

  terms(id: NodeId): number[] {
    const n = this.node(id);
    const out: number[] = [];
    for (let i = n.firstIndex; i <= n.lastIndex; i++) out.push(n.termAt(i)!);
    return out;
  }
}
