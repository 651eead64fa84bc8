// Producers (the client library's idempotent Producer) writing unique values to every partition of a
// topic, each keeping a bounded number of messages in flight, recording every acknowledgement and every
// value ever handed to send() (an unacknowledged value may or may not be in the log, but at most once).
import { Producer } from "../../src/client/index";

export interface Ack {
  partition: number;
  offset: number;
  value: string;
}

export interface WorkloadOptions {
  sentinels: string[];
  topic: string;
  partitions: number;
  producers?: number;
  /** Messages awaiting acknowledgement per producer. */
  inFlightPerProducer?: number;
  /** Upper bound on messages sent per second by all producers together. */
  maxRatePerSec?: number;
  requestTimeoutMs?: number;
  deliveryTimeoutMs?: number;
}

export class Workload {
  readonly acks: Ack[] = [];
  /** Every value handed to a producer, acknowledged or not. */
  readonly sent = new Set<string>();
  failed = 0;
  readonly errors = new Map<string, number>();
  /** The first full message of each kind of error in `errors`. */
  readonly errorExamples = new Map<string, string>();
  private running = false;
  private loops: Promise<void>[] = [];
  private producers: Producer[] = [];
  private readonly runId = Math.random().toString(36).slice(2, 8);
  private startedAt = 0;
  private issued = 0;

  constructor(private readonly opts: WorkloadOptions) {
    if (opts.partitions < 1) throw new Error("partitions must be >= 1");
  }

  start(): void {
    if (this.running) throw new Error("workload already running");
    this.running = true;
    this.startedAt = Date.now();
    const n = this.opts.producers ?? 2;
    for (let i = 0; i < n; i++) {
      const p = new Producer({
        sentinels: this.opts.sentinels,
        idempotent: true,
        requestTimeoutMs: this.opts.requestTimeoutMs ?? 3000,
        deliveryTimeoutMs: this.opts.deliveryTimeoutMs ?? 20_000,
        sentinelTimeoutMs: 1000,
      });
      this.producers.push(p);
      const window = this.opts.inFlightPerProducer ?? 32;
      // Each slot keeps to one partition, so a partition without a leader holds up only its own slots.
      for (let w = 0; w < window; w++) this.loops.push(this.loop(p, i, w, window, (w + i) % this.opts.partitions));
    }
  }

  /** Stops sending and waits for everything in flight to be acknowledged or to fail. */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    await Promise.all(this.producers.map((p) => p.close().catch(() => {})));
  }

  private async loop(p: Producer, producerIndex: number, slot: number, window: number, partition: number): Promise<void> {
    const { topic } = this.opts;
    for (let seq = slot; this.running; seq += window) {
      await this.pace();
      if (!this.running) break;
      const value = `${this.runId}-p${producerIndex}-${seq}`;
      this.sent.add(value);
      try {
        const [m] = await p.send(topic, [{ value, partition }]);
        if (!m || m.partition !== partition) throw new Error(`acknowledged on partition ${m?.partition}, sent to ${partition}`);
        this.acks.push({ partition, offset: m.offset, value });
      } catch (e) {
        this.failed++;
        const k = e instanceof Error ? e.message.replace(/\d+/g, "N").slice(0, 80) : String(e);
        this.errors.set(k, (this.errors.get(k) ?? 0) + 1);
        if (!this.errorExamples.has(k)) this.errorExamples.set(k, `${new Date().toISOString()} p${partition} ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  }

  /** Waits until every partition has a new acknowledgement; returns the partitions that got none in time. */
  async waitAcksOnEveryPartition(withinMs: number): Promise<number[]> {
    const from = this.acks.length;
    const deadline = Date.now() + withinMs;
    const missing = new Set(Array.from({ length: this.opts.partitions }, (_, p) => p));
    let scanned = from;
    for (;;) {
      for (; scanned < this.acks.length; scanned++) missing.delete(this.acks[scanned]!.partition);
      if (missing.size === 0 || Date.now() >= deadline) break;
      await Bun.sleep(50);
    }
    return [...missing].sort((a, b) => a - b);
  }

  /** What each producer is doing for `partition` (where it sends, what waits, its last error): for a stuck one. */
  senderStates(partition: number): string[] {
    return this.producers.map((p, i) => `producer ${i}: ${JSON.stringify(p.partitionState(this.opts.topic, partition) ?? "nothing sent")}`);
  }

  /** Keeps the total send rate under maxRatePerSec, so a long run does not grow without bound. */
  private async pace(): Promise<void> {
    const rate = this.opts.maxRatePerSec;
    this.issued++;
    if (!rate) return;
    const dueMs = this.startedAt + (this.issued / rate) * 1000;
    const waitMs = dueMs - Date.now();
    if (waitMs > 0) await Bun.sleep(waitMs);
  }
}
