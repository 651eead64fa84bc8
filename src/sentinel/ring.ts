// Consistent-hash ring with virtual nodes. Each broker owns `virtualNodes` points on a 32-bit circle; the
// replicas of a key (topic/partition) are the first R distinct eligible brokers met walking clockwise from
// the key's hash. Adding one broker to N only takes over the arcs its own points land on, so about
// 1/(N+1) of replica slots move; many points per broker keep the arcs (and so the load) even.

export type BrokerId = number;

export const MAX_VIRTUAL_NODES = 4096; // a bound on memory: points = brokers * virtualNodes
export const MAX_RING_BROKERS = 4096;

/** xxHash32 is fast, well distributed on short strings and stable across runs (seed fixed). */
export function hash32(text: string): number {
  return Number(Bun.hash.xxHash32(text, 0x9e3779b1)) >>> 0;
}

interface Point {
  hash: number;
  broker: BrokerId;
}

export class HashRing {
  private readonly brokers = new Set<BrokerId>();
  private points: Point[] = []; // sorted by (hash, broker) so ties break the same way everywhere

  constructor(readonly virtualNodes: number) {
    if (!Number.isInteger(virtualNodes) || virtualNodes < 1 || virtualNodes > MAX_VIRTUAL_NODES) {
      throw new Error(`virtualNodes must be an integer in [1, ${MAX_VIRTUAL_NODES}], got ${virtualNodes}`);
    }
  }

  has(broker: BrokerId): boolean {
    return this.brokers.has(broker);
  }

  size(): number {
    return this.brokers.size;
  }

  members(): BrokerId[] {
    return [...this.brokers].sort((a, b) => a - b);
  }

  add(broker: BrokerId): void {
    if (!Number.isInteger(broker) || broker <= 0) throw new Error(`broker id must be a positive integer, got ${broker}`);
    if (this.brokers.has(broker)) return;
    if (this.brokers.size >= MAX_RING_BROKERS) throw new Error(`ring is full (${MAX_RING_BROKERS} brokers)`);
    this.brokers.add(broker);
    for (let v = 0; v < this.virtualNodes; v++) this.points.push({ hash: hash32(`broker-${broker}#${v}`), broker });
    this.points.sort(comparePoints);
  }

  remove(broker: BrokerId): void {
    if (!this.brokers.delete(broker)) return;
    this.points = this.points.filter((p) => p.broker !== broker);
  }

  /**
   * Distinct brokers in clockwise order from the key's position, each once, keeping only `eligible` ones.
   * Failover walks the same order to find "the next broker on the ring".
   */
  *walk(key: string, eligible: (broker: BrokerId) => boolean = () => true): Generator<BrokerId> {
    const n = this.points.length;
    if (n === 0) return;
    const start = this.firstAtOrAfter(hash32(key));
    const seen = new Set<BrokerId>();
    for (let i = 0; i < n && seen.size < this.brokers.size; i++) {
      const point = this.points[(start + i) % n]!;
      if (seen.has(point.broker)) continue;
      seen.add(point.broker);
      if (eligible(point.broker)) yield point.broker;
    }
  }

  /** The first `count` distinct eligible brokers clockwise; fewer when not enough are eligible. */
  replicas(key: string, count: number, eligible?: (broker: BrokerId) => boolean): BrokerId[] {
    if (!Number.isInteger(count) || count < 0) throw new Error(`replica count must be a non-negative integer`);
    const out: BrokerId[] = [];
    if (count === 0) return out;
    for (const b of this.walk(key, eligible)) {
      out.push(b);
      if (out.length === count) break;
    }
    return out;
  }

  private firstAtOrAfter(h: number): number {
    let lo = 0;
    let hi = this.points.length; // answer in [0, n]; n wraps to 0
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.points[mid]!.hash < h) lo = mid + 1;
      else hi = mid;
    }
    return lo === this.points.length ? 0 : lo;
  }
}

function comparePoints(a: Point, b: Point): number {
  return a.hash - b.hash || a.broker - b.broker;
}

/** The ring key of a partition: placement of topic t, partition p. */
export function partitionKey(topic: string, partition: number): string {
  return `${topic}/${partition}`;
}
