// A produce load that runs until told to stop (the CLI bench runs a fixed count instead): the suites that
// watch something while messages flow (disk counters, a leader being killed) need a load they can start,
// observe and stop. Same shape as `goulette bench`: WINDOW messages unacknowledged, one send each.
import { Producer } from "../../src/client/producer";

export interface LoadOptions {
  sentinel: string;
  topic: string;
  size: number;
  window: number;
  /** Spread over partitions 0..partitions-1 in turn; the partitioner chooses when absent. */
  partitions?: number;
  deliveryTimeoutMs?: number;
}

export interface Ack {
  sentAtMs: number;
  ackedAtMs: number;
}

export class Load {
  readonly producer: Producer;
  acked = 0;
  failed = 0;
  firstError: unknown;
  /** Called on each acknowledgement (performance.now() times). */
  onAck: (a: Ack) => void = () => {};
  private sent = 0;
  private stopping = false;
  private readonly payload: Uint8Array;
  private outstanding = 0;
  private idle: (() => void) | undefined;

  constructor(private readonly o: LoadOptions) {
    if (o.window < 1) throw new Error("window must be at least 1");
    this.producer = new Producer({ sentinels: [o.sentinel], deliveryTimeoutMs: o.deliveryTimeoutMs ?? 60_000 });
    this.payload = new Uint8Array(o.size).fill(120);
  }

  get payloadBytesAcked(): number {
    return this.acked * this.o.size;
  }

  start(): void {
    this.pump();
  }

  /** Stops sending and resolves once every message sent so far is acknowledged or has failed. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.outstanding === 0) return;
    await new Promise<void>((r) => (this.idle = r));
  }

  async close(): Promise<void> {
    this.stopping = true;
    await this.producer.close().catch(() => {});
  }

  private pump(): void {
    while (!this.stopping && this.outstanding < this.o.window) {
      const partition = this.o.partitions ? this.sent % this.o.partitions : undefined;
      this.sent++;
      this.outstanding++;
      const sentAtMs = performance.now();
      this.producer.send(this.o.topic, [{ value: this.payload, partition }]).then(
        () => {
          this.acked++;
          this.onAck({ sentAtMs, ackedAtMs: performance.now() });
          this.settled();
        },
        (e: unknown) => {
          this.failed++;
          this.firstError ??= e;
          this.settled();
        },
      );
    }
  }

  private settled(): void {
    this.outstanding--;
    if (this.stopping) {
      if (this.outstanding === 0) this.idle?.();
      return;
    }
    this.pump();
  }
}
