import { Option } from "commander";
import { Admin, type TopicInfo } from "../../client/admin";
import { formatTable, io, jsonLine, parseFormat, runCommand, UsageError } from "../output";
import { intOption, parse, partitionJson, program, sentinelAddresses } from "./common";

const usage = "usage: goulette topic create NAME [--partitions 1] [--replicas 3] | list | describe NAME | delete NAME";

/** `goulette topic create|list|describe|delete`. */
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
    const opts = cmd.opts<{ sentinel?: string; format?: string; partitions: number; replicas: number }>();
    const format = parseFormat(opts.format);
    const name = cmd.args[0] ?? "";
    const admin = new Admin({ sentinels: sentinelAddresses(opts.sentinel, env) });
    try {
      switch (sub) {
        case "create": {
          const t = await admin.createTopic(name, { partitions: opts.partitions, replicas: opts.replicas });
          if (format === "json") out.write(jsonLine(topicJson(t)));
          else out.write(`created topic ${t.name}: ${t.partitions} partition${t.partitions === 1 ? "" : "s"}, ${t.replicationFactor} replica${t.replicationFactor === 1 ? "" : "s"}\n`);
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
    partition_info: t.partitionInfo.map((p) => partitionJson(p, t.name)),
  };
}

export function describeTable(t: TopicInfo): string {
  const head = `topic ${t.name}: ${t.partitions} partitions, ${t.replicationFactor} replicas\n`;
  return (
    head +
    formatTable(
      ["PARTITION", "LEADER", "REPLICAS", "TERM", "COMMIT", "HIGH-WATERMARK"],
      t.partitionInfo.map((p) => [p.partition, p.leader || "-", p.replicas.join(",") || "-", p.term, p.commitIndex, p.highWatermark]),
    )
  );
}
