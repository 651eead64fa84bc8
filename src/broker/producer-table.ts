// Idempotent producers: (producer id, epoch, sequence) checked when a batch is APPLIED, on every replica in
// log order, so every replica reaches the same verdict and the table survives leader changes as replicated
// state (it travels in snapshots). A retried batch is answered with its original offset, never appended twice.
import { assert } from "./assert";

/** Batches remembered per producer for retries; a producer keeps at most this many in flight per partition. */
export const RECENT_BATCHES_MAX = 256;

interface RecentBatch {
  baseSequence: number;
  recordCount: number;
  baseOffset: number;
}

interface ProducerEntry {
  epoch: number;
  nextSequence: number;
  recent: RecentBatch[]; // oldest first, bounded by RECENT_BATCHES_MAX
}

export type SequenceVerdict =
  | { kind: "append" }
  | { kind: "duplicate"; baseOffset: number }
  | { kind: "fenced"; currentEpoch: number }
  | { kind: "out-of-order"; expected: number };

export class ProducerTable {
  private producers = new Map<number, ProducerEntry>();
  /** The highest producer id ever recorded here: the sentinel never hands it out again (see KeepAlive). */
  highestId = 0;

  check(producerId: number, epoch: number, baseSequence: number): SequenceVerdict {
    if (producerId === 0) return { kind: "append" };
    const p = this.producers.get(producerId);
    if (p === undefined) return { kind: "append" };
    if (epoch < p.epoch) return { kind: "fenced", currentEpoch: p.epoch };
    if (epoch > p.epoch) return { kind: "append" };
    if (baseSequence === p.nextSequence) return { kind: "append" };
    for (const b of p.recent) if (b.baseSequence === baseSequence) return { kind: "duplicate", baseOffset: b.baseOffset };
    return { kind: "out-of-order", expected: p.nextSequence };
  }

  record(producerId: number, epoch: number, baseSequence: number, recordCount: number, baseOffset: number): void {
    if (producerId === 0) return;
    if (producerId > this.highestId) this.highestId = producerId;
    let p = this.producers.get(producerId);
    if (p === undefined || epoch > p.epoch) {
      p = { epoch, nextSequence: 0, recent: [] };
      this.producers.set(producerId, p);
    }
    assert(epoch === p.epoch, "recording a batch of a fenced epoch");
    p.nextSequence = baseSequence + recordCount;
    p.recent.push({ baseSequence, recordCount, baseOffset });
    if (p.recent.length > RECENT_BATCHES_MAX) p.recent.shift();
  }

  toJSON(): unknown {
    return [...this.producers].map(([id, p]) => [id, p.epoch, p.nextSequence, p.recent.map((b) => [b.baseSequence, b.recordCount, b.baseOffset])]);
  }

  static fromJSON(raw: unknown): ProducerTable {
    const t = new ProducerTable();
    for (const [id, epoch, nextSequence, recent] of raw as [number, number, number, [number, number, number][]][]) {
      t.producers.set(id, { epoch, nextSequence, recent: recent.map(([baseSequence, recordCount, baseOffset]) => ({ baseSequence, recordCount, baseOffset })) });
      if (id > t.highestId) t.highestId = id;
    }
    return t;
  }
}
