/**
 * Per-partition sequence numbers of the idempotent producer. A batch takes its base sequence once, when
 * it is formed, and keeps it through every retry: that is what lets the broker drop a duplicate.
 */
export class SequenceNumbers {
  private readonly next = new Map<string, number>();

  /** Reserves `count` sequence numbers for one batch of `topic/partition` and returns the first. */
  take(topic: string, partition: number, count: number): number {
    if (!Number.isInteger(count) || count < 1) throw new Error(`a batch holds at least one record, got ${count}`);
    const k = `${topic}/${partition}`;
    const base = this.next.get(k) ?? 0;
    // uint32 on the wire; wraps like Kafka's int32 sequences do.
    this.next.set(k, (base + count) % 2 ** 32);
    return base;
  }

  /** Starts the partition over at 0 (under a new producer id). */
  reset(topic: string, partition: number): void {
    this.next.delete(`${topic}/${partition}`);
  }

  peek(topic: string, partition: number): number {
    return this.next.get(`${topic}/${partition}`) ?? 0;
  }
}
