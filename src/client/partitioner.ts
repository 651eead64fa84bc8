/**
 * Picks a partition: a stable hash of the key (the same key always lands on the same partition, so its
 * messages stay ordered), else "sticky" for keyless messages: they fill one partition for `stickyBytes`,
 * then move to the next, round-robin. Over time every partition gets the same share, but the messages
 * sent close together share a batch, where spreading each one to a different partition would make as
 * many batches of one message (each costs the brokers a Raft entry, a WAL record and a request).
 */
export class Partitioner {
  private next = 0;
  private filled = 0;

  constructor(readonly stickyBytes = DEFAULT_STICKY_BYTES) {}

  partition(key: Uint8Array | undefined, partitions: number, bytes = 0): number {
    if (!Number.isInteger(partitions) || partitions < 1) throw new Error(`partition count must be >= 1, got ${partitions}`);
    if (key !== undefined) return keyPartition(key, partitions);
    if (this.filled > 0 && this.filled + bytes > this.stickyBytes) {
      this.next = (this.next + 1) % 0x7fffffff;
      this.filled = 0;
    }
    this.filled += Math.max(1, bytes);
    return this.next % partitions;
  }
}

/** Keyless bytes a partition takes before the next one's turn: the producer passes its batch size. */
export const DEFAULT_STICKY_BYTES = 256 * 1024;

export function keyPartition(key: Uint8Array, partitions: number): number {
  return Number(BigInt(Bun.hash(key)) % BigInt(partitions));
}
