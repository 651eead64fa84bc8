import { Option } from "commander";
import { Consumer, type ConsumedMessage, type StartFrom } from "../../client/consumer";
import { io, jsonLine, parseFormat, runCommand, UsageError } from "../output";
import { intOption, parse, program, sentinelAddresses } from "./common";

export interface ConsumeFlags {
  topic: string;
  group?: string;
  from: StartFrom;
  partition?: number;
  max?: number;
  follow: boolean;
  timeoutMs: number;
  readFrom: "leader" | "follower";
  format: "table" | "json";
  sentinels: string[];
}

/** Parses and checks the flags of `goulette consume`; undefined when --help was shown. */
export async function parseConsumeFlags(args: string[], env: Record<string, string | undefined>): Promise<ConsumeFlags | undefined> {
  const cmd = program("consume", "print messages of a topic")
    .argument("<topic>")
    .addOption(new Option("--group <group>", "consume as a member of this consumer group, committing offsets"))
    .addOption(new Option("--from-beginning", "start at the oldest retained message"))
    .addOption(new Option("--offset <n>", "start at this offset").argParser(intOption("--offset", 0)))
    .addOption(new Option("--partition <p>", "read only this partition").argParser(intOption("--partition", 0)))
    .addOption(new Option("--max <n>", "stop after this many messages").argParser(intOption("--max", 1)))
    .addOption(new Option("--follow", "keep waiting for new messages"))
    .addOption(new Option("--timeout-ms <ms>", "without --follow: stop when nothing arrives for this long").default(5000).argParser(intOption("--timeout-ms", 1)))
    .addOption(new Option("--read-from <replica>", "leader or follower").default("leader"))
    .addOption(new Option("--format <format>", "json: one object per message"));
  if (!(await parse(cmd, args))) return undefined;
  const o = cmd.opts<{
    sentinel?: string; group?: string; fromBeginning?: boolean; offset?: number; partition?: number; max?: number;
    follow?: boolean; timeoutMs: number; readFrom: string; format?: string;
  }>();
  if (o.fromBeginning && o.offset !== undefined) throw new UsageError("--from-beginning and --offset exclude each other");
  if (o.offset !== undefined && o.group) throw new UsageError("--offset cannot be used with --group (the group's committed offsets decide)");
  if (o.readFrom !== "leader" && o.readFrom !== "follower") throw new UsageError(`--read-from must be leader or follower, got ${o.readFrom}`);
  if (o.group && o.partition !== undefined) throw new UsageError("--partition cannot be used with --group (the group assigns partitions)");
  // Reading what is there by default; following starts at the end, like `tail -f`, unless told otherwise.
  const from: StartFrom = o.offset ?? (o.fromBeginning ? "beginning" : o.follow ? "latest" : "beginning");
  return {
    topic: cmd.args[0]!,
    group: o.group,
    from,
    partition: o.partition,
    max: o.max,
    follow: o.follow ?? false,
    timeoutMs: o.timeoutMs,
    readFrom: o.readFrom,
    format: parseFormat(o.format),
    sentinels: sentinelAddresses(o.sentinel, env),
  };
}

const decoder = new TextDecoder();

export function messageJson(m: ConsumedMessage) {
  return {
    partition: m.partition,
    offset: m.offset,
    key: m.key === undefined ? null : decoder.decode(m.key),
    value: decoder.decode(m.value),
    timestamp: m.timestamp,
  };
}

/**
 * `goulette consume TOPIC`: without --follow it stops at --max, when nothing arrives for --timeout-ms, or
 * once every partition has been read to its end and nothing more arrived.
 */
export async function run(args: string[], env: Record<string, string | undefined>): Promise<number> {
  return runCommand(async () => {
    const { out } = io();
    const flags = await parseConsumeFlags(args, env);
    if (!flags) return 0;
    const consumer = new Consumer({
      sentinels: flags.sentinels,
      groupId: flags.group,
      readFrom: flags.readFrom,
      defaultFrom: flags.from === "latest" ? "latest" : "beginning",
      maxWaitMs: Math.min(500, flags.timeoutMs),
    });
    let stopping = false;
    const stop = () => void (stopping = true);
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    let count = 0;
    try {
      if (flags.group) await consumer.subscribe([flags.topic]);
      else if (flags.partition !== undefined) {
        const n = await consumer.directory.partitionCount(flags.topic);
        if (flags.partition >= n) throw new UsageError(`${flags.topic} has ${n} partitions, no partition ${flags.partition}`);
        consumer.assign([{ topic: flags.topic, partition: flags.partition, from: flags.from }]);
      } else await consumer.assignTopic(flags.topic, flags.from);

      let lastArrival = Date.now();
      while (!stopping) {
        const messages = await consumer.poll(Math.min(200, flags.timeoutMs), flags.max === undefined ? 10_000 : flags.max - count);
        for (const m of messages) {
          out.write(flags.format === "json" ? jsonLine(messageJson(m)) : decoder.decode(m.value) + "\n");
        }
        count += messages.length;
        if (messages.length > 0) {
          lastArrival = Date.now();
          if (flags.follow) void out.flush();
        }
        if (flags.max !== undefined && count >= flags.max) break;
        if (!flags.follow && messages.length === 0 && (consumer.caughtUp() || Date.now() - lastArrival >= flags.timeoutMs)) break;
      }
    } finally {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      await consumer.close().catch(() => {});
    }
    return 0;
  });
}
