// A small seeded generator (mulberry32 mixing). The core never reads a clock or Math.random: every
// random choice (election timeouts, simulated faults) comes from one of these, so a seed replays a run.

export class Prng {
  private state: number;

  constructor(seed: number) {
    // Mix the seed once so nearby seeds (1, 2, 3...) do not start from nearby states.
    let s = (seed >>> 0) ^ 0x9e3779b9;
    s = Math.imul(s ^ (s >>> 16), 0x85ebca6b);
    s = Math.imul(s ^ (s >>> 13), 0xc2b2ae35);
    this.state = (s ^ (s >>> 16)) >>> 0;
  }

  /** A uniformly distributed unsigned 32-bit integer. */
  nextU32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** A float in [0, 1). */
  float(): number {
    return this.nextU32() / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.float() * n);
  }

  chance(p: number): boolean {
    return this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error("pick from an empty list");
    return items[this.int(items.length)] as T;
  }
}

/** Derive a per-node seed so nodes sharing a group seed still time out at different moments. */
export function mixSeed(seed: number, id: number): number {
  return (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(id >>> 0, 0x85ebca77)) >>> 0;
}
