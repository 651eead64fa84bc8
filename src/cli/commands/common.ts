import { Command, CommanderError, Option } from "commander";
import { io, UsageError } from "../output";
import type { PartitionInfo } from "../../client/admin";

export const DEFAULT_SENTINEL = "127.0.0.1:7070";

/** Sentinel addresses from --sentinel, else GOULETTE_SENTINEL, else the local default; comma-separated. */
export function sentinelAddresses(flag: string | undefined, env: Record<string, string | undefined>): string[] {
  const raw = flag ?? env.GOULETTE_SENTINEL ?? DEFAULT_SENTINEL;
  const list = raw.split(",").map((s) => s.trim()).filter(Boolean);
  if (list.length === 0) throw new UsageError("--sentinel names no address");
  for (const a of list) if (!/^.+:\d+$/.test(a)) throw new UsageError(`sentinel address must be host:port, got ${a}`);
  return list;
}

/** A commander program that reports instead of exiting, so `run` returns an exit code. */
export function program(name: string, description: string): Command {
  const { out } = io();
  return new Command(name)
    .description(description)
    .exitOverride()
    .configureOutput({ writeOut: (s) => out.write(s), writeErr: () => {} })
    .showSuggestionAfterError(false)
    .addOption(new Option("--sentinel <addresses>", "sentinel host:port, comma-separated (env GOULETTE_SENTINEL)"));
}

/**
 * Parses `args` (everything after the command name). Returns undefined when --help was shown;
 * throws UsageError with commander's message on a bad flag.
 */
export async function parse(cmd: Command, args: string[]): Promise<Command | undefined> {
  try {
    await cmd.parseAsync(args, { from: "user" });
    return cmd;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === "commander.helpDisplayed" || e.code === "commander.help" || e.code === "commander.version") return undefined;
      throw new UsageError(e.message.replace(/^error: /, ""));
    }
    throw e;
  }
}

export function intOption(name: string, min: number, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new UsageError(`${name} must be an integer from ${min}${max < Number.MAX_SAFE_INTEGER ? ` to ${max}` : ""}, got ${value}`);
    }
    return n;
  };
}

/** One partition as scripts read it (`--format json`), the same in `cluster status` and `topic describe`. */
export function partitionJson(p: PartitionInfo, topic: string) {
  return {
    topic: p.topic || topic,
    partition: p.partition,
    leader: p.leader,
    leader_address: p.leaderAddress,
    replicas: p.replicas,
    learners: p.learners,
    term: p.term,
    commit_index: p.commitIndex,
    high_watermark: p.highWatermark,
    log_start_offset: p.logStartOffset,
  };
}
