/** A byte buffer that grows by doubling, written through a DataView; reused between WAL writes. */
export class GrowableBuffer {
  bytes: Uint8Array;
  view: DataView;
  length = 0;

  constructor(initialBytes = 64 * 1024) {
    this.bytes = new Uint8Array(initialBytes);
    this.view = new DataView(this.bytes.buffer);
  }

  /** Makes room for `more` bytes after `length`; returns the offset where they start. */
  reserve(more: number): number {
    const need = this.length + more;
    if (need > this.bytes.length) {
      let cap = this.bytes.length * 2;
      while (cap < need) cap *= 2;
      const next = new Uint8Array(cap);
      next.set(this.bytes.subarray(0, this.length));
      this.bytes = next;
      this.view = new DataView(next.buffer);
    }
    const at = this.length;
    this.length = need;
    return at;
  }

  reset(): void {
    this.length = 0;
  }
}
