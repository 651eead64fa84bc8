import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { HashRing, partitionKey } from "../../src/sentinel/ring";

const PARTITIONS = 1200;

function placeAll(ring: HashRing, topic: string, replicas: number): number[][] {
  const out: number[][] = [];
  for (let p = 0; p < PARTITIONS; p++) out.push(ring.replicas(partitionKey(topic, p), replicas));
  return out;
}

function ringOf(brokers: number, virtualNodes = 128): HashRing {
  const ring = new HashRing(virtualNodes);
  for (let b = 1; b <= brokers; b++) ring.add(b);
  return ring;
}

describe("HashRing", () => {
  test("replicas are distinct, of the asked count, and stable across instances", () => {
    const a = ringOf(5);
    const b = new HashRing(128);
    for (const id of [5, 3, 1, 4, 2]) b.add(id); // insertion order must not matter
    for (let p = 0; p < 50; p++) {
      const r = a.replicas(partitionKey("orders", p), 3);
      expect(r.length).toBe(3);
      expect(new Set(r).size).toBe(3);
      expect(b.replicas(partitionKey("orders", p), 3)).toEqual(r);
    }
  });

  test("skips ineligible brokers and returns fewer when not enough are eligible", () => {
    const ring = ringOf(4);
    const all = ring.replicas("t/0", 4);
    const healthy = (b: number) => b !== all[0];
    const r = ring.replicas("t/0", 3, healthy);
    expect(r).toEqual(all.slice(1));
    expect(ring.replicas("t/0", 5).length).toBe(4);
    expect(ring.replicas("t/0", 3, () => false)).toEqual([]);
  });

  test("walk after the current replicas gives the next broker clockwise", () => {
    const ring = ringOf(6);
    const order = [...ring.walk("t/7")];
    expect(order.length).toBe(6);
    expect(ring.replicas("t/7", 3)).toEqual(order.slice(0, 3));
  });

  test("removing a broker only moves the replicas it held", () => {
    const ring = ringOf(6);
    const before = placeAll(ring, "t", 3);
    ring.remove(4);
    const after = placeAll(ring, "t", 3);
    for (let p = 0; p < PARTITIONS; p++) {
      if (!before[p]!.includes(4)) expect(after[p]).toEqual(before[p]!);
      else expect(after[p]!.filter((b) => !before[p]!.includes(b)).length).toBe(1);
    }
  });

  test("rejects bad configuration", () => {
    expect(() => new HashRing(0)).toThrow();
    expect(() => ringOf(1).add(0)).toThrow();
  });

  // Stated bounds (128 virtual nodes, 1,200 partitions, 3..12 brokers, RF 1..3): adding one broker moves
  // between 0.5x and 1.5x of 1/(N+1) of the replica slots, and every broker holds within 30% of the mean.
  test("property: adding a broker to N moves about 1/(N+1) of replicas; load is balanced", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 3, max: 12 }),
        fc.integer({ min: 1, max: 3 }),
        fc.string({ minLength: 1, maxLength: 12 }),
        (brokers, rf, topic) => {
          const ring = ringOf(brokers);
          const before = placeAll(ring, topic, rf);
          const load = new Map<number, number>();
          for (const set of before) for (const b of set) load.set(b, (load.get(b) ?? 0) + 1);
          const mean = (PARTITIONS * rf) / brokers;
          for (let b = 1; b <= brokers; b++) {
            expect(Math.abs((load.get(b) ?? 0) - mean) / mean).toBeLessThanOrEqual(0.3);
          }
          ring.add(brokers + 1);
          const after = placeAll(ring, topic, rf);
          let moved = 0;
          for (let p = 0; p < PARTITIONS; p++) {
            const gained = after[p]!.filter((b) => !before[p]!.includes(b));
            // only the new broker can take a slot
            for (const g of gained) expect(g).toBe(brokers + 1);
            moved += gained.length;
          }
          const fraction = moved / (PARTITIONS * rf);
          const expected = 1 / (brokers + 1);
          expect(fraction).toBeGreaterThanOrEqual(0.5 * expected);
          expect(fraction).toBeLessThanOrEqual(1.5 * expected);
        },
      ),
      { numRuns: 25, seed: 42 },
    );
  });
});
