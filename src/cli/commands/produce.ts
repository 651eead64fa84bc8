import { Option } from "commander";
import { Producer, type RecordMetadata } from "../../client/producer";
import { describeError } from "../../client/errors";
import { io, jsonLine, parseFormat, runCommand } from "../output";
import { intOption, parse, program, sentinelAddresses } from "./common";

/** Unacknowledged lines we hold at most; reading stdin pauses beyond it. */
const MAX_PENDING = 8192;

interface InFlight {
  value: string;
  settled: boolean;
  result?: RecordMetadata;
  error?: unknown;
  done: Promise<void>;
}

/**
 * `goulette produce TOPIC`: one message per stdin line, sent without waiting for earlier acks, with the acks
 * printed in input order as they arrive.
 */
export async function run(args: string[], env: Record<string, string | undefined>): Promise<number> {
  return runCommand(async () => {
    const { out, err } = io();
    const cmd = program("produce", "send one message per stdin line")
      .argument("<topic>")
      .addOption(new Option("--key <key>", "key of every message (same key: same partition)"))
      .addOption(new Option("--partition <n>", "send to this partition instead of the partitioner's choice").argParser(intOption("--partition", 0)))
      .addOption(new Option("--format <format>", "json: one line per acknowledged message"));
    if (!(await parse(cmd, args))) return 0;
    const opts = cmd.opts<{ sentinel?: string; key?: string; partition?: number; format?: string }>();
    const format = parseFormat(opts.format);
    const topic = cmd.args[0]!;
    const producer = new Producer({ sentinels: sentinelAddresses(opts.sentinel, env) });
    let acked = 0;
    let failed = 0;
    let firstError: unknown;
    const queue: InFlight[] = [];
    let head = 0;
    try {
      await producer.prepare(topic);

      const printSettled = () => {
        let wrote = false;
        while (head < queue.length && queue[head]!.settled) {
          const f = queue[head++]!;
          if (f.result) {
            acked++;
            if (format === "json") {
              out.write(jsonLine({ partition: f.result.partition, offset: f.result.offset, value: f.value }));
              wrote = true;
            }
          } else {
            failed++;
            firstError ??= f.error;
          }
        }
        if (head > 4096) {
          queue.splice(0, head);
          head = 0;
        }
        // Each ack reaches the reader now, not when a buffer fills: callers time them.
        if (wrote) void out.flush();
      };

      const submit = (line: string) => {
        const f: InFlight = { value: line, settled: false, done: Promise.resolve() };
        f.done = producer
          .send(topic, [{ key: opts.key, value: line, partition: opts.partition }])
          .then(
            ([r]) => void (f.result = r),
            (e) => void (f.error = e),
          )
          .finally(() => {
            f.settled = true;
            printSettled();
          });
        queue.push(f);
      };

      const decoder = new TextDecoder();
      let partial = "";
      for await (const chunk of Bun.stdin.stream()) {
        partial += decoder.decode(chunk, { stream: true });
        let nl: number;
        while ((nl = partial.indexOf("\n")) >= 0) {
          submit(partial.slice(0, nl).replace(/\r$/, ""));
          partial = partial.slice(nl + 1);
        }
        while (queue.length - head >= MAX_PENDING) await queue[head]!.done;
      }
      partial += decoder.decode();
      if (partial.length > 0) submit(partial.replace(/\r$/, ""));
      await Promise.all(queue.slice(head).map((f) => f.done));
      printSettled();
    } finally {
      await producer.close().catch(() => {});
    }
    if (format === "table") out.write(`acknowledged ${acked} message${acked === 1 ? "" : "s"} on ${topic}\n`);
    if (failed > 0) {
      err.write(`goulette: ${failed} of ${acked + failed} messages not acknowledged: ${describeError(firstError).replace(/\n/g, "; ")}\n`);
      return 1;
    }
    return 0;
  });
}
