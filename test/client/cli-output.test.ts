import { afterEach, describe, expect, test } from "bun:test";
import { errorLine, formatTable, memorySink, parseFormat, setIO, UsageError } from "../../src/cli/output";
import { sentinelAddresses } from "../../src/cli/commands/common";
import { parseConsumeFlags, messageJson } from "../../src/cli/commands/consume";
import { statusJsonLines, statusTables } from "../../src/cli/commands/cluster";
import { summarize } from "../../src/cli/commands/bench";
import { run as runTopic } from "../../src/cli/commands/topic";
import { run as runProduce } from "../../src/cli/commands/produce";
import { WireError } from "../../src/wire/errors";
import { ErrorCode } from "../../src/proto/goulette_pb";
import type { ClusterStatus } from "../../src/client/admin";

afterEach(() => setIO(undefined));

describe("output", () => {
  test("tables align columns, numbers to the right", () => {
    const t = formatTable(["NAME", "N"], [["a", 1], ["longer", 100]]);
    expect(t).toBe("NAME      N\na         1\nlonger  100\n");
  });

  test("errors are one line with the code name", () => {
    expect(errorLine(new WireError(ErrorCode.UNKNOWN_TOPIC, "no topic x"))).toBe("goulette: UNKNOWN_TOPIC: no topic x\n");
    expect(errorLine(new Error("a\nb"))).toBe("goulette: a; b\n");
  });

  test("--format accepts json and table only", () => {
    expect(parseFormat("json")).toBe("json");
    expect(parseFormat(undefined)).toBe("table");
    expect(() => parseFormat("yaml")).toThrow(UsageError);
  });
});

const status: ClusterStatus = {
  brokers: [
    { id: 1, address: "127.0.0.1:7081", health: "healthy", lastSeenMsAgo: 12, fsyncPolicy: "always", partitions: 2, leaders: 1, version: "0.1.0", storageError: "" },
    { id: 2, address: "127.0.0.1:7082", health: "down", lastSeenMsAgo: 4000, fsyncPolicy: "always", partitions: 2, leaders: 1, version: "0.1.0",
      storageError: "wal: disk full while writing WAL in /data/.wal: ENOSPC" },
  ],
  topics: [
    {
      name: "t", partitions: 2, replicationFactor: 2, config: {}, configUnknown: false,
      partitionInfo: [
        { topic: "t", partition: 0, leader: 2, leaderAddress: "127.0.0.1:7082", term: 3, replicas: [1, 2], learners: [], commitIndex: 10, highWatermark: 9, logStartOffset: 0 },
        { topic: "t", partition: 1, leader: 1, leaderAddress: "127.0.0.1:7081", term: 1, replicas: [2, 1], learners: [], commitIndex: 4, highWatermark: 3, logStartOffset: 0 },
      ],
    },
  ],
  sentinels: [{ id: 1, address: "127.0.0.1:7070", leader: true }],
  warnings: ["broker 1 holds old/0 (group 9), which this sentinel's map never recorded"],
  changes: [{ topic: "t", partition: 1, kind: "move", fromBroker: 2, toBroker: 3, step: "catching-up", runningMs: 850 }],
};

/** The same search ../shared/contract/cluster.ts leaderOf() does over `cluster status --format json`. */
function leaderOf(lines: unknown[], topic: string, partition: number): unknown[] {
  const found: unknown[] = [];
  const walk = (o: unknown) => {
    if (Array.isArray(o)) return o.forEach(walk);
    if (o && typeof o === "object") {
      const r = o as Record<string, unknown>;
      if ("leader" in r && (r.topic === topic || r.topic === undefined) && Number(r.partition ?? 0) === partition) found.push(r.leader);
      Object.values(r).forEach(walk);
    }
  };
  walk(lines);
  return found;
}

describe("cluster status", () => {
  test("json lines name each partition's leader by broker id, and nothing else looks like one", () => {
    const lines = statusJsonLines(status).trim().split("\n").map((l) => JSON.parse(l));
    expect(lines.map((l) => l.type)).toEqual(["broker", "broker", "partition", "partition", "sentinel", "warning", "change"]);
    expect(lines[6]).toEqual({ type: "change", kind: "move", topic: "t", partition: 1, from: 2, to: 3, step: "catching-up", running_ms: 850 });
    expect(lines[5].message).toBe("broker 1 holds old/0 (group 9), which this sentinel's map never recorded");
    expect(leaderOf(lines, "t", 0)).toEqual([2]);
    expect(leaderOf(lines, "t", 1)).toEqual([1]);
    expect(lines[2]).toMatchObject({ topic: "t", partition: 0, leader: 2, replicas: [1, 2], commit_index: 10 });
    expect(lines[0].storage_error).toBeNull();
    expect(lines[1].storage_error).toBe("wal: disk full while writing WAL in /data/.wal: ENOSPC");
  });

  test("tables show health and commit index", () => {
    const t = statusTables(status);
    expect(t).toContain("down");
    expect(t).toMatch(/TOPIC\s+PARTITION\s+LEADER\s+REPLICAS\s+TERM\s+COMMIT/);
    expect(t).toMatch(/t\s+0\s+2\s+1,2\s+3\s+10/);
    expect(t).toContain("broker 2 cannot store writes (restart it once fixed): wal: disk full while writing WAL in /data/.wal: ENOSPC\n");
    expect(t).not.toContain("broker 1 cannot");
    expect(t).toContain("warning: broker 1 holds old/0 (group 9), which this sentinel's map never recorded\n");
    expect(t).toMatch(/CHANGE\s+TOPIC\s+PARTITION\s+FROM\s+TO\s+STEP\s+RUNNING-MS\n\s*move\s+t\s+1\s+2\s+3\s+catching-up\s+850\n/);
    expect(statusTables({ ...status, changes: [] })).not.toContain("CHANGE");
  });
});

describe("flags", () => {
  test("sentinel addresses: flag, then environment, then the default", () => {
    expect(sentinelAddresses("a:1,b:2", { GOULETTE_SENTINEL: "c:3" })).toEqual(["a:1", "b:2"]);
    expect(sentinelAddresses(undefined, { GOULETTE_SENTINEL: "c:3" })).toEqual(["c:3"]);
    expect(sentinelAddresses(undefined, {})).toEqual(["127.0.0.1:7070"]);
    expect(() => sentinelAddresses("nohost", {})).toThrow(/host:port/);
  });

  test("consume flags, in any order after the topic", async () => {
    const f = await parseConsumeFlags(
      ["rep", "--from-beginning", "--max", "2000", "--timeout-ms", "10000", "--read-from", "follower", "--format", "json", "--sentinel", "127.0.0.1:9"],
      {},
    );
    expect(f).toMatchObject({ topic: "rep", from: "beginning", max: 2000, timeoutMs: 10000, readFrom: "follower", format: "json", sentinels: ["127.0.0.1:9"], follow: false });
    expect((await parseConsumeFlags(["t", "--offset", "5", "--partition", "1"], {}))).toMatchObject({ from: 5, partition: 1 });
    expect((await parseConsumeFlags(["t", "--follow"], {}))!.from).toBe("latest");
    expect((await parseConsumeFlags(["t"], {}))!.from).toBe("beginning");
  });

  test("consume rejects contradictions and bad values", async () => {
    await expect(parseConsumeFlags(["t", "--from-beginning", "--offset", "3"], {})).rejects.toThrow(/exclude/);
    await expect(parseConsumeFlags(["t", "--read-from", "nearest"], {})).rejects.toThrow(/leader or follower/);
    await expect(parseConsumeFlags(["t", "--max", "0"], {})).rejects.toThrow(/--max/);
    await expect(parseConsumeFlags(["t", "--bogus"], {})).rejects.toThrow(/unknown option/);
    await expect(parseConsumeFlags([], {})).rejects.toThrow(/missing required argument/);
  });

  test("a consumed message prints with the contract's fields", () => {
    const m = { topic: "t", partition: 1, offset: 7, key: undefined, value: new TextEncoder().encode("v"), headers: [], timestamp: 5 };
    expect(messageJson(m)).toEqual({ partition: 1, offset: 7, key: null, value: "v", timestamp: 5 });
  });

  test("bad flags exit 2 with one line on stderr; --help exits 0", async () => {
    const out = memorySink(), err = memorySink();
    setIO({ out, err });
    expect(await runTopic(["create", "x", "--partitions", "zero"], {})).toBe(2);
    expect(err.text()).toBe("goulette: --partitions must be an integer from 1 to 10000, got zero\n");
    expect(await runTopic(["frobnicate"], {})).toBe(2);
    expect(await runProduce(["t", "--help"], {})).toBe(0);
    expect(out.text()).toContain("--key");
  });
});

describe("bench", () => {
  test("summary has exactly the peers' fields", () => {
    const lat = Float64Array.from({ length: 1000 }, (_, i) => 1000 - i);
    const r = summarize(lat, 2, { replicas: 3, size: 1024, count: 1000, window: 16 });
    expect(Object.keys(r)).toEqual(["system", "replicas", "size", "count", "window", "msgs_per_s", "mb_per_s", "p50_ms", "p99_ms", "p999_ms"]);
    expect(r).toMatchObject({ system: "goulette", msgs_per_s: 500, mb_per_s: 0.5, p50_ms: 501, p99_ms: 991, p999_ms: 1000 });
  });
});
