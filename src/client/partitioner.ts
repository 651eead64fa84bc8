/**
 * Picks a partition: a stable hash of the key (the same key always lands on the same partition, so its
 * messages stay ordered), else "sticky" for keyless messages: they fill one partition for `stickyBytes`,
 * then move on. Messages sent close together share a batch, where spreading each one to a different
 * partition would make as many batches of one message (each costs the brokers a Raft entry, a WAL record
 * and a request). The next partition is the next one round-robin, or, when the producer says how many
 * bytes each partition already has queued and in flight, the least loaded one (the first of them
 * round-robin): a partition whose leader is slower then takes fewer turns instead of growing a queue that
 * every later message of its turns waits behind (Kafka's adaptive partitioning does the same).
 */
export class Partitioner {
  private next = 0;
  private filled = 0;

  constructor(readonly stickyBytes = DEFAULT_STICKY_BYTES) {}

  partition(key: Uint8Array | undefined, partitions: number, bytes = 0, loadBytes?: (partition: number) => number): number {
    if (!Number.isInteger(partitions) || partitions < 1) throw new Error(`partition count must be >= 1, got ${partitions}`);
    if (key !== undefined) return keyPartition(key, partitions);
    if (this.filled > 0 && this.filled + bytes > this.stickyBytes) {
      this.next = loadBytes === undefined ? (this.next + 1) % 0x7fffffff : leastLoaded(this.next + 1, partitions, loadBytes);
      this.filled = 0;
    }
    this.filled += Math.max(1, bytes);
    return this.next % partitions;
  }
}

/** The partition with the fewest bytes loaded, scanning round-robin from `from` (ties go to the earliest). */
function leastLoaded(from: number, partitions: number, loadBytes: (partition: number) => number): number {
  let best = from % partitions;
  let bestLoad = loadBytes(best);
  for (let i = 1; i < partitions && bestLoad > 0; i++) {
    const p = (from + i) % partitions;
    const load = loadBytes(p);
    if (load < bestLoad) {
      best = p;
      bestLoad = load;
    }
  }
  return best;
}

/** Keyless bytes a partition takes before the next one's turn: the producer passes its batch size. */
export const DEFAULT_STICKY_BYTES = 256 * 1024;

export function keyPartition(key: Uint8Array, partitions: number): number {
  return Number(BigInt(Bun.hash(key)) % BigInt(partitions));
}
