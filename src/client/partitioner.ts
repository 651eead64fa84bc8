/**
 * Picks a partition: a stable hash of the key (the same key always lands on the same partition, so its
 * messages stay ordered), else round-robin so keyless traffic spreads evenly.
 */
export class Partitioner {
  private next = 0;

  partition(key: Uint8Array | undefined, partitions: number): number {
    if (!Number.isInteger(partitions) || partitions < 1) throw new Error(`partition count must be >= 1, got ${partitions}`);
    if (key !== undefined) return keyPartition(key, partitions);
    const p = this.next % partitions;
    this.next = (this.next + 1) % 0x7fffffff;
    return p;
  }
}

export function keyPartition(key: Uint8Array, partitions: number): number {
  return Number(BigInt(Bun.hash(key)) % BigInt(partitions));
}
