// A bounded ring of the last index of each Append sent to a follower and not yet acknowledged: the
// pipelining window. When full, the leader stops sending to that follower until acknowledgements free it.
import { assert } from "./assert";

export class Inflights {
  private readonly buffer: number[];
  private start = 0;
  count = 0;

  constructor(readonly capacity: number) {
    assert(capacity > 0, "inflight capacity must be positive");
    this.buffer = new Array<number>(capacity).fill(0);
  }

  full(): boolean {
    return this.count === this.capacity;
  }

  add(lastIndex: number): void {
    assert(!this.full(), "inflights overflow");
    if (this.count > 0) {
      const prev = this.buffer[(this.start + this.count - 1) % this.capacity] as number;
      assert(lastIndex > prev, () => `inflights must grow: ${lastIndex} after ${prev}`);
    }
    this.buffer[(this.start + this.count) % this.capacity] = lastIndex;
    this.count++;
  }

  /** Acknowledgement up to `index` frees every message that ended at or before it. */
  freeLE(index: number): void {
    while (this.count > 0 && (this.buffer[this.start] as number) <= index) {
      this.start = (this.start + 1) % this.capacity;
      this.count--;
    }
    if (this.count === 0) this.start = 0;
  }

  freeFirst(): void {
    if (this.count === 0) return;
    this.freeLE(this.buffer[this.start] as number);
  }

  reset(): void {
    this.start = 0;
    this.count = 0;
  }
}
