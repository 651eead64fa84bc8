import { Option } from "commander";
import { Admin, type ClusterStatus } from "../../client/admin";
import { formatTable, io, jsonLine, parseFormat, runCommand, UsageError } from "../output";
import { parse, partitionJson, program, sentinelAddresses } from "./common";

/** `goulette cluster status`: brokers and their health, then every partition's leader, replicas and commit index. */
export async function run(args: string[], env: Record<string, string | undefined>): Promise<number> {
  return runCommand(async () => {
    const { out } = io();
    const [sub, ...rest] = args;
    if (sub === "--help" || sub === "-h" || sub === "help") {
      out.write("usage: goulette cluster status [--format json]\n");
      return 0;
    }
    if (sub !== "status") throw new UsageError(`unknown cluster command ${sub ?? "(none)"}; usage: goulette cluster status [--format json]`);
    const cmd = program("cluster status", "brokers, health, partitions, leaders").addOption(new Option("--format <format>", "table or json"));
    if (!(await parse(cmd, rest))) return 0;
    const opts = cmd.opts<{ sentinel?: string; format?: string }>();
    const format = parseFormat(opts.format);
    const admin = new Admin({ sentinels: sentinelAddresses(opts.sentinel, env) });
    try {
      const status = await admin.clusterStatus();
      out.write(format === "json" ? statusJsonLines(status) : statusTables(status));
    } finally {
      await admin.close();
    }
    return 0;
  });
}

/**
 * One object a line: {"type":"broker",...}, then {"type":"partition","topic","partition","leader":<broker id>,...},
 * then {"type":"sentinel",...}. Only partition lines carry a "leader" key, so scripts that look for
 * topic/partition/leader find exactly the partition leaders.
 */
export function statusJsonLines(s: ClusterStatus): string {
  let text = "";
  for (const b of s.brokers) {
    text += jsonLine({
      type: "broker",
      id: b.id,
      address: b.address,
      health: b.health,
      last_seen_ms_ago: b.lastSeenMsAgo,
      partitions: b.partitions,
      leaders: b.leaders,
      fsync: b.fsyncPolicy,
      version: b.version,
      storage_error: b.storageError || null,
    });
  }
  for (const t of s.topics) {
    for (const p of t.partitionInfo) {
      text += jsonLine({ type: "partition", ...partitionJson(p, t.name) });
    }
  }
  for (const x of s.sentinels) text += jsonLine({ type: "sentinel", id: x.id, address: x.address, is_leader: x.leader });
  for (const w of s.warnings) text += jsonLine({ type: "warning", message: w });
  for (const c of s.changes) {
    text += jsonLine({ type: "change", kind: c.kind, topic: c.topic, partition: c.partition, from: c.fromBroker, to: c.toBroker, step: c.step, running_ms: c.runningMs });
  }
  return text;
}

export function statusTables(s: ClusterStatus): string {
  const brokers = formatTable(
    ["BROKER", "ADDRESS", "HEALTH", "LAST-SEEN-MS", "PARTITIONS", "LEADERS"],
    s.brokers.map((b) => [b.id, b.address, b.health, b.lastSeenMsAgo, b.partitions, b.leaders]),
  );
  // Below the table, not in it: the error says what failed and where, too long for a column.
  const failing = s.brokers
    .filter((b) => b.storageError !== "")
    .map((b) => `broker ${b.id} cannot store writes (restart it once fixed): ${b.storageError}\n`)
    .join("");
  const rows = s.topics.flatMap((t) =>
    t.partitionInfo.map((p) => [p.topic || t.name, p.partition, p.leader || "-", p.replicas.join(",") || "-", p.term, p.commitIndex, p.highWatermark]),
  );
  const parts = rows.length
    ? formatTable(["TOPIC", "PARTITION", "LEADER", "REPLICAS", "TERM", "COMMIT", "HIGH-WATERMARK"], rows)
    : "no topics\n";
  const sentinels = s.sentinels.length
    ? formatTable(["SENTINEL", "ADDRESS", "ROLE"], s.sentinels.map((x) => [x.id, x.address, x.leader ? "leader" : "follower"]))
    : "";
  const warnings = s.warnings.map((w) => `warning: ${w}\n`).join("");
  const changes = s.changes.length
    ? formatTable(
        ["CHANGE", "TOPIC", "PARTITION", "FROM", "TO", "STEP", "RUNNING-MS"],
        s.changes.map((c) => [c.kind, c.topic, c.partition, c.fromBroker, c.toBroker, c.step, c.runningMs]),
      )
    : "";
  return [brokers + failing, parts, changes, sentinels, warnings].filter(Boolean).join("\n");
}
