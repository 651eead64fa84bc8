import { Option } from "commander";
import { Admin, type TopicInfo } from "../../client/admin";
import { formatTable, io, jsonLine, parseFormat, runCommand, UsageError } from "../output";
import { intOption, parse, partitionJson, program, sentinelAddresses } from "./common";

const usage =
  "usage: goulette topic create NAME [--partitions 1] [--replicas 3] [config] | alter NAME [config] [--reset KEY] | list | describe NAME | delete NAME\n" +
  "config: --retention-ms N --retention-bytes N --segment-bytes N --segment-ms N";

/** The topic config flags create and alter share, under the CLI's names (Kafka's in the config itself). */
function configOptions(cmd: ReturnType<typeof program>): void {
  cmd
    .addOption(new Option("--retention-ms <ms>", "delete data older than this (whole segments); -1 keeps all").argParser(intOption("--retention-ms", -1)))
    .addOption(new Option("--retention-bytes <n>", "per partition, delete the oldest segments beyond this size; -1 keeps all").argParser(intOption("--retention-bytes", -1)))
    .addOption(new Option("--segment-bytes <n>", "roll segments at this size (default: the broker's)").argParser(intOption("--segment-bytes", 1024)))
    .addOption(new Option("--segment-ms <ms>", "roll segments at this age (default 7 days)").argParser(intOption("--segment-ms", 1000)));
}

interface ConfigFlags {
  retentionMs?: number;
  retentionBytes?: number;
  segmentBytes?: number;
  segmentMs?: number;
}

/** The topic config under Kafka's names (what SetTopicRole carries to every replica). */
function configFrom(opts: ConfigFlags): Record<string, string> {
  const config: Record<string, string> = {};
  if (opts.retentionMs !== undefined) config["retention.ms"] = String(opts.retentionMs);
  if (opts.retentionBytes !== undefined) config["retention.bytes"] = String(opts.retentionBytes);
  if (opts.segmentBytes !== undefined) config["segment.bytes"] = String(opts.segmentBytes);
  if (opts.segmentMs !== undefined) config["segment.ms"] = String(opts.segmentMs);
  return config;
}

/** `goulette topic create|alter|list|describe|delete`. */
export async function run(args: string[], env: Record<string, string | undefined>): Promise<number> {
  return runCommand(async () => {
    const { out } = io();
    const [sub, ...rest] = args;
    if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
      out.write(usage + "\n");
      return sub === undefined ? 2 : 0;
    }
    const cmd = program(`topic ${sub}`, "").addOption(new Option("--format <format>", "table or json"));
    switch (sub) {
      case "create":
        cmd
          .description("create a topic")
          .argument("<name>")
          .addOption(new Option("--partitions <n>", "partitions").default(1).argParser(intOption("--partitions", 1, 10_000)))
          .addOption(new Option("--replicas <n>", "replicas of each partition").default(3).argParser(intOption("--replicas", 1, 15)));
        configOptions(cmd);
        break;
      case "alter":
        cmd.description("change a topic's config (retention, segments) on every replica").argument("<name>");
        configOptions(cmd);
        cmd.addOption(
          new Option("--reset <key>", "remove a config key so the default applies again (retention.ms, retention.bytes, segment.bytes, segment.ms); repeatable")
            .argParser((v: string, prev: string[] | undefined) => [...(prev ?? []), v]),
        );
        break;
      case "list":
        cmd.description("list topics");
        break;
      case "describe":
      case "delete":
        cmd.description(`${sub} a topic`).argument("<name>");
        break;
      default:
        throw new UsageError(`unknown topic command ${sub}; ${usage}`);
    }
    if (!(await parse(cmd, rest))) return 0;
    const opts = cmd.opts<
      ConfigFlags & {
        sentinel?: string;
        format?: string;
        partitions: number;
        replicas: number;
        reset?: string[];
      }
    >();
    const format = parseFormat(opts.format);
    const name = cmd.args[0] ?? "";
    const admin = new Admin({ sentinels: sentinelAddresses(opts.sentinel, env) });
    try {
      switch (sub) {
        case "create": {
          const config = configFrom(opts);
          const t = await admin.createTopic(name, { partitions: opts.partitions, replicas: opts.replicas, config });
          if (format === "json") out.write(jsonLine(topicJson(t)));
          else out.write(`created topic ${t.name}: ${t.partitions} partition${t.partitions === 1 ? "" : "s"}, ${t.replicationFactor} replica${t.replicationFactor === 1 ? "" : "s"}\n`);
          break;
        }
        case "alter": {
          const set = configFrom(opts);
          const reset = opts.reset ?? [];
          if (Object.keys(set).length === 0 && reset.length === 0) throw new UsageError("topic alter: nothing to change; give a config flag or --reset KEY");
          const t = await admin.alterTopicConfig(name, { set, reset });
          if (format === "json") out.write(jsonLine(topicJson(t)));
          else out.write(`altered topic ${t.name}: ${configText(t) || "default config"}\n`);
          break;
        }
        case "list": {
          const topics = await admin.listTopics();
          if (format === "json") for (const t of topics) out.write(jsonLine(topicJson(t)));
          else out.write(formatTable(["TOPIC", "PARTITIONS", "REPLICAS"], topics.map((t) => [t.name, t.partitions, t.replicationFactor])));
          break;
        }
        case "describe": {
          const t = await admin.describeTopic(name);
          if (format === "json") out.write(jsonLine(topicJson(t)));
          else out.write(describeTable(t));
          break;
        }
        case "delete":
          await admin.deleteTopic(name);
          if (format === "json") out.write(jsonLine({ deleted: name }));
          else out.write(`deleted topic ${name}\n`);
          break;
      }
    } finally {
      await admin.close();
    }
    return 0;
  });
}

export function topicJson(t: TopicInfo) {
  return {
    topic: t.name,
    partitions: t.partitions,
    replicas: t.replicationFactor,
    config: t.config,
    config_unknown: t.configUnknown,
    partition_info: t.partitionInfo.map((p) => partitionJson(p, t.name)),
  };
}

/** "retention.ms=60000, segment.bytes=1048576": the config set on the topic, by key. */
function configText(t: TopicInfo): string {
  return Object.entries(t.config)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`)
    .join(", ");
}

export function describeTable(t: TopicInfo): string {
  const config = configText(t);
  const head =
    `topic ${t.name}: ${t.partitions} partitions, ${t.replicationFactor} replicas${config ? `, ${config}` : ""}\n` +
    (t.configUnknown ? "config: unknown (the sentinel's map lost it; brokers keep theirs until `topic alter` sets one)\n" : "");
  return (
    head +
    formatTable(
      ["PARTITION", "LEADER", "REPLICAS", "TERM", "COMMIT", "LOG-START", "HIGH-WATERMARK"],
      t.partitionInfo.map((p) => [p.partition, p.leader || "-", p.replicas.join(",") || "-", p.term, p.commitIndex, p.logStartOffset, p.highWatermark]),
    )
  );
}
