import { Option } from "commander";
import { Admin } from "../../client/admin";
import { backoffMs, sleep } from "../../client/backoff";
import { ErrorCode } from "../../proto/goulette_pb";
import { codeOf } from "../../client/errors";
import { Producer } from "../../client/producer";
import { io, jsonLine, runCommand } from "../output";
import { intOption, parse, program, sentinelAddresses } from "./common";

export interface BenchResult {
  system: "goulette";
  replicas: number;
  size: number;
  count: number;
  window: number;
  msgs_per_s: number;
  mb_per_s: number;
  p50_ms: number;
  p99_ms: number;
  p999_ms: number;
}

/** Percentiles of per-message latencies the way the peers' bench computes them (sorts in place). */
export function summarize(latMs: Float64Array, seconds: number, p: { replicas: number; size: number; count: number; window: number }): BenchResult {
  if (latMs.length !== p.count || p.count === 0) throw new Error(`expected ${p.count} latencies, got ${latMs.length}`);
  latMs.sort();
  const q = (x: number) => +latMs[Math.min(p.count - 1, Math.floor(x * p.count))]!.toFixed(2);
  return {
    system: "goulette",
    replicas: p.replicas,
    size: p.size,
    count: p.count,
    window: p.window,
    msgs_per_s: Math.round(p.count / seconds),
    mb_per_s: +((p.count * p.size) / seconds / 1e6).toFixed(1),
    p50_ms: q(0.5),
    p99_ms: q(0.99),
    p999_ms: q(0.999),
  };
}

/**
 * `goulette bench`: creates a topic, produces COUNT messages of SIZE bytes keeping WINDOW unacknowledged
 * (the producer batches them as it likes) and prints one JSON line comparable with ../shared/peers.
 */
export async function run(args: string[], env: Record<string, string | undefined>): Promise<number> {
  return runCommand(async () => {
    const { out, err } = io();
    const cmd = program("bench", "measure produce throughput and ack latency")
      .addOption(new Option("--count <n>", "messages").default(100_000).argParser(intOption("--count", 1)))
      .addOption(new Option("--size <bytes>", "bytes per message").default(1024).argParser(intOption("--size", 0, 1024 * 1024)))
      .addOption(new Option("--window <n>", "messages unacknowledged at once").default(256).argParser(intOption("--window", 1, 1_000_000)))
      .addOption(new Option("--replicas <n>", "replicas of the bench topic").default(3).argParser(intOption("--replicas", 1, 15)))
      .addOption(new Option("--partitions <n>", "partitions of the bench topic").default(1).argParser(intOption("--partitions", 1, 10_000)))
      .addOption(new Option("--topic <name>", "topic name (default: a fresh bench-<time> topic, deleted afterwards)"))
      .addOption(new Option("--batch-bytes <n>", "producer: largest batch (default: the producer's)").argParser(intOption("--batch-bytes", 1024, 8 * 1024 * 1024)))
      .addOption(new Option("--in-flight-batches <n>", "producer: batches in flight per partition (default: the producer's)").argParser(intOption("--in-flight-batches", 1, 1024)));
    if (!(await parse(cmd, args))) return 0;
    const o = cmd.opts<{
      sentinel?: string; count: number; size: number; window: number; replicas: number; partitions: number; topic?: string;
      batchBytes?: number; inFlightBatches?: number;
    }>();
    const sentinels = sentinelAddresses(o.sentinel, env);
    const tty = process.stderr.isTTY === true;
    const admin = new Admin({ sentinels });
    const topic = o.topic ?? `bench-${Date.now()}`;
    const producer = new Producer({ sentinels, deliveryTimeoutMs: 60_000, maxBatchBytes: o.batchBytes, maxInFlightBatches: o.inFlightBatches });
    try {
      await createWhenBrokersAllow(admin, topic, o.partitions, o.replicas, 30_000);
      // One unmeasured message per partition finds the leaders before the clock starts.
      await Promise.all(Array.from({ length: o.partitions }, (_, partition) => producer.send(topic, [{ value: "warmup", partition }])));

      const payload = new Uint8Array(o.size).fill(120);
      const lat = new Float64Array(o.count);
      let sent = 0;
      let acked = 0;
      let lastProgress = 0;
      const t0 = performance.now();
      await new Promise<void>((resolve, reject) => {
        const pump = () => {
          while (sent < o.count && sent - acked < o.window) {
            const i = sent++;
            const s = performance.now();
            producer.send(topic, [{ value: payload }]).then(() => {
              lat[i] = performance.now() - s;
              acked++;
              if (tty && performance.now() - lastProgress > 250) {
                lastProgress = performance.now();
                err.write(`\r${acked}/${o.count} acknowledged`);
              }
              if (acked === o.count) resolve();
              else pump();
            }, reject);
          }
        };
        pump();
      });
      const seconds = (performance.now() - t0) / 1000;
      if (tty) err.write("\r\x1b[K");
      out.write(jsonLine(summarize(lat, seconds, o)));
    } finally {
      await producer.close().catch(() => {});
      if (!o.topic) await admin.deleteTopic(topic).catch(() => {});
      await admin.close();
    }
    return 0;
  });
}

/** Creates the topic, waiting while the cluster has too few healthy brokers (e.g. just after `dev` started). */
async function createWhenBrokersAllow(admin: Admin, topic: string, partitions: number, replicas: number, withinMs: number): Promise<void> {
  const deadline = Date.now() + withinMs;
  for (let attempt = 0; ; attempt++) {
    try {
      await admin.createTopic(topic, { partitions, replicas });
      return;
    } catch (e) {
      const code = codeOf(e);
      if (code === ErrorCode.TOPIC_EXISTS) return;
      if (code !== ErrorCode.NOT_ENOUGH_BROKERS || Date.now() >= deadline) throw e;
      await sleep(backoffMs(attempt, 100, 1000));
    }
  }
}
