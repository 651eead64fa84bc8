import { afterEach, describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  AlterTopicConfigRequestSchema,
  BrokerHealth,
  ClusterStatusRequestSchema,
  CreateTopicRequestSchema,
  DeleteTopicRequestSchema,
  DescribeTopicRequestSchema,
  ErrorCode,
  GetTopicLeaderRequestSchema,
  GroupHeartbeatRequestSchema,
  InitProducerRequestSchema,
  JoinGroupRequestSchema,
  KeepAliveRequestSchema,
  ListTopicsRequestSchema,
  MetadataRequestSchema,
  PartitionStatusSchema,
  RegisterBrokerRequestSchema,
  Role,
  UnregisterBrokerRequestSchema,
} from "../../src/proto/goulette_pb";
import { startSentinel, type RunningSentinel } from "../../src/sentinel";
import { sentinelDefaults, type SentinelOptions } from "../../src/sentinel/options";
import { WireClient, WireError, expectCase, type Body, type BodyCase, type BodyOf } from "../../src/wire";
import { FakeCluster, waitFor, type FakeBroker } from "./fake-broker";
import { replicaSet, ringPlacement } from "../ring-placement";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "goulette-sentinel-"));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

async function sentinel(over: Partial<SentinelOptions> = {}, dataDir = tempDir()): Promise<RunningSentinel & { client: WireClient; dataDir: string }> {
  // Fake brokers beat only when a test says so: long silences by default, so a slow machine cannot turn
  // them suspicious mid-test. Tests about health and failover set short ones.
  const s = await startSentinel({
    ...sentinelDefaults,
    listen: "127.0.0.1:0",
    dataDir,
    logLevel: "error",
    suspiciousAfterMs: 60_000,
    downAfterMs: 120_000,
    ...over,
  });
  const client = new WireClient(s.address, { requestTimeoutMs: 5_000 });
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    client.close();
    await s.stop();
  };
  cleanups.push(stop);
  return { address: s.address, stop, client, dataDir };
}

async function cluster(s: { address: string }, n: number, keepAliveMs = 0): Promise<{ fc: FakeCluster; brokers: FakeBroker[] }> {
  const fc = new FakeCluster();
  cleanups.push(() => fc.stopAll());
  const brokers: FakeBroker[] = [];
  for (let i = 1; i <= n; i++) brokers.push(await fc.add(i, s.address, keepAliveMs));
  return { fc, brokers };
}

async function rejects(p: Promise<unknown>): Promise<WireError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof WireError) return e;
    throw e;
  }
  throw new Error("expected a WireError");
}

async function call<C extends BodyCase>(c: WireClient, body: Body, expected: C): Promise<BodyOf<C>> {
  return expectCase(await c.call(body), expected);
}

const createTopic = (name: string, partitions: number, replicas: number): Body => ({
  case: "createTopic",
  value: create(CreateTopicRequestSchema, { name, partitions, replicas }),
});

describe("sentinel registry", () => {
  test("register, keep-alive, unknown broker told to register, duplicate id refused", async () => {
    const s = await sentinel();
    const { brokers } = await cluster(s, 1);
    const b1 = brokers[0]!;
    await b1.keepAlive();
    expect(b1.unknownBrokerAnswers).toBe(0);

    const ka = await s.client.call({ case: "keepAlive", value: create(KeepAliveRequestSchema, { brokerId: 9, address: "127.0.0.1:1" }) });
    expect(() => expectCase(ka, "keepAliveResponse")).toThrow(expect.objectContaining({ code: ErrorCode.UNKNOWN_BROKER }));

    const dup = await rejects(
      s.client.call({ case: "registerBroker", value: create(RegisterBrokerRequestSchema, { brokerId: 1, address: "127.0.0.1:2" }) }).then((r) => expectCase(r, "registerBrokerResponse")),
    );
    expect(dup.code).toBe(ErrorCode.DUPLICATE_BROKER);
    expect(dup.message).toContain(b1.address);
    await b1.register(); // same id, same address: fine
    expect(b1.registrations).toBe(2);

    const bad = await rejects(
      s.client.call({ case: "registerBroker", value: create(RegisterBrokerRequestSchema, { brokerId: 3, address: "nonsense" }) }).then((r) => expectCase(r, "registerBrokerResponse")),
    );
    expect(bad.code).toBe(ErrorCode.INVALID_ARGUMENT);

    await call(s.client, { case: "unregisterBroker", value: create(UnregisterBrokerRequestSchema, { brokerId: 1 }) }, "unregisterBrokerResponse");
    const status = await call(s.client, { case: "clusterStatus", value: create(ClusterStatusRequestSchema, {}) }, "clusterStatusResponse");
    expect(status.brokers.map((b) => [b.id, b.health])).toEqual([[1, BrokerHealth.LEFT]]);
    await b1.keepAlive(); // told UNKNOWN_BROKER, so it registers again
    expect(b1.unknownBrokerAnswers).toBe(1);
    expect(b1.registrations).toBe(3);
  });

  test("a silent broker goes suspicious then down in cluster status", async () => {
    const s = await sentinel({ keepAliveMs: 20, suspiciousAfterMs: 60, downAfterMs: 150 });
    await cluster(s, 1);
    const healthOf = async () => {
      const st = await call(s.client, { case: "clusterStatus", value: create(ClusterStatusRequestSchema, {}) }, "clusterStatusResponse");
      return st.brokers[0]!.health;
    };
    expect(await healthOf()).toBe(BrokerHealth.HEALTHY);
    await waitFor("suspicious", async () => (await healthOf()) === BrokerHealth.SUSPICIOUS);
    await waitFor("down", async () => (await healthOf()) === BrokerHealth.DOWN);
  });
});

describe("sentinel topics", () => {
  test("create places replicas on the ring and sends SetTopicRole to each with the right replica set", async () => {
    const s = await sentinel();
    const { brokers } = await cluster(s, 4);
    const created = await call(s.client, createTopic("orders", 3, 3), "createTopicResponse");
    const topic = created.topic!;
    expect(topic.partitions).toBe(3);
    const groups = new Set<bigint>();
    for (const pm of topic.partitionMetadata) {
      expect(pm.replicas.length).toBe(3);
      groups.add(pm.group);
      for (const b of brokers) {
        const calls = b.calls.filter((c) => c.kind === "setTopicRole" && c.req.topic === "orders" && c.req.partition === pm.partition);
        if (!pm.replicas.includes(b.id)) {
          expect(calls.length).toBe(0);
          continue;
        }
        expect(calls.length).toBe(1);
        const first = calls[0]!;
        if (first.kind !== "setTopicRole") throw new Error("unreachable");
        const req = first.req;
        expect(req.group).toBe(pm.group);
        expect(req.followers.map((f) => f.id).sort()).toEqual(pm.replicas.filter((r) => r !== b.id).sort());
        expect(req.followers.every((f) => f.address === brokers[f.id - 1]!.address)).toBe(true);
        // the hint: first replica leads a new partition
        expect(req.leaderId).toBe(pm.replicas[0]!);
        expect(req.role).toBe(b.id === pm.replicas[0] ? Role.LEADER : Role.FOLLOWER);
        expect(req.mapEpoch).toBeGreaterThan(0n);
      }
    }
    expect(groups.size).toBe(3);

    const exists = await rejects(call(s.client, createTopic("orders", 1, 1), "createTopicResponse"));
    expect(exists.code).toBe(ErrorCode.TOPIC_EXISTS);
    const tooMany = await rejects(call(s.client, createTopic("big", 1, 5), "createTopicResponse"));
    expect(tooMany.code).toBe(ErrorCode.NOT_ENOUGH_BROKERS);
    expect(tooMany.message).toContain("needs 5 replicas but only 4");
    const badName = await rejects(call(s.client, createTopic("a/b", 1, 1), "createTopicResponse"));
    expect(badName.code).toBe(ErrorCode.INVALID_ARGUMENT);
    const unknown = await rejects(call(s.client, { case: "describeTopic", value: create(DescribeTopicRequestSchema, { name: "nope" }) }, "describeTopicResponse"));
    expect(unknown.code).toBe(ErrorCode.UNKNOWN_TOPIC);

    const list = await call(s.client, { case: "listTopics", value: create(ListTopicsRequestSchema, {}) }, "listTopicsResponse");
    expect(list.topics.map((t) => t.name)).toEqual(["orders"]);
  });

  test("SetTopicRole is retried with backoff until the broker confirms", async () => {
    const s = await sentinel();
    const { brokers } = await cluster(s, 1);
    brokers[0]!.failSetTopicRole = 2;
    await call(s.client, createTopic("t", 1, 1), "createTopicResponse");
    await waitFor("confirmation", () => brokers[0]!.hosted.has("t/0"));
    expect(brokers[0]!.calls.filter((c) => c.kind === "setTopicRole").length).toBe(3);
  });

  test("delete sends RemoveTopic to every replica", async () => {
    const s = await sentinel();
    const { brokers } = await cluster(s, 3);
    await call(s.client, createTopic("gone", 2, 2), "createTopicResponse");
    const hosts = brokers.filter((b) => b.hosted.size > 0);
    await call(s.client, { case: "deleteTopic", value: create(DeleteTopicRequestSchema, { name: "gone" }) }, "deleteTopicResponse");
    await waitFor("removal on every replica", () => hosts.every((b) => b.calls.some((c) => c.kind === "removeTopic" && c.topic === "gone" && c.all)));
    expect(brokers.every((b) => b.hosted.size === 0)).toBe(true);
    const again = await rejects(call(s.client, { case: "deleteTopic", value: create(DeleteTopicRequestSchema, { name: "gone" }) }, "deleteTopicResponse"));
    expect(again.code).toBe(ErrorCode.UNKNOWN_TOPIC);
  });

  test("drift: a lost partition gets SetTopicRole again, an extra one gets RemoveTopic", async () => {
    const s = await sentinel({ keepAliveMs: 20 });
    const { brokers } = await cluster(s, 1);
    const b = brokers[0]!;
    await call(s.client, createTopic("t", 1, 1), "createTopicResponse");
    b.hosted.clear(); // e.g. its disk was wiped
    // Group 1 is t/0's: a group the map handed out, so this copy under another name is stale.
    b.phantom.push(create(PartitionStatusSchema, { topic: "old", partition: 4, group: 1n, role: Role.FOLLOWER }));
    // Reports missing the partition are ignored only during a short grace after the confirmation
    // (3 keep-alive intervals, for reports already in flight); beats keep coming until it is re-sent.
    await waitFor("re-sent role", async () => {
      await b.keepAlive();
      return b.hosted.has("t/0");
    });
    await waitFor("removal", () => b.calls.some((c) => c.kind === "removeTopic" && c.topic === "old" && c.partition === 4 && !c.all));
    expect(b.calls.filter((c) => c.kind === "setTopicRole").length).toBe(2);
  });

  test("a partition under a group the map never handed out is left alone, warned about, and its name and group not reused", async () => {
    const s = await sentinel({ keepAliveMs: 1_000 }); // beats are sent by hand; adoption waits ten intervals
    const { brokers } = await cluster(s, 1);
    const b = brokers[0]!;
    // What a broker reports after the sentinel's map lost the records of a topic it created (group 7).
    b.phantom.push(create(PartitionStatusSchema, { topic: "orders", partition: 0, group: 7n, role: Role.LEADER }));
    await b.keepAlive();
    await waitFor("warning", async () => {
      const st = await call(s.client, { case: "clusterStatus", value: create(ClusterStatusRequestSchema, {}) }, "clusterStatusResponse");
      return st.warnings.some((w) => w.startsWith("broker 1 holds orders/0 (group 7), which this sentinel's map never recorded"));
    });
    const taken = await rejects(call(s.client, createTopic("orders", 1, 1), "createTopicResponse"));
    expect(taken.code).toBe(ErrorCode.TOPIC_EXISTS);
    expect(taken.message).toMatch(/partition 0 group 7 on broker 1/);
    const other = await call(s.client, createTopic("other", 2, 1), "createTopicResponse");
    expect(other.topic!.partitionMetadata.map((p) => Number(p.group))).toEqual([8, 9]);
    for (let i = 0; i < 5; i++) await b.keepAlive();
    expect(b.calls.some((c) => c.kind === "removeTopic")).toBe(false);
  });

  test("a lost topic whose every partition brokers report is adopted back, with their groups and voters", async () => {
    const s = await sentinel({ keepAliveMs: 20 });
    const { brokers } = await cluster(s, 3, 20);
    // What the brokers report after the sentinel's map lost the records of a two-partition topic.
    for (const b of brokers) {
      b.phantom.push(create(PartitionStatusSchema, { topic: "orders", partition: 0, group: 7n, term: 3n, role: Role.FOLLOWER, voters: [1, 2, 3] }));
      b.phantom.push(create(PartitionStatusSchema, { topic: "orders", partition: 1, group: 5n, term: 2n, role: Role.FOLLOWER, voters: [3, 1, 2] }));
    }
    const listed = async () => (await call(s.client, { case: "listTopics", value: create(ListTopicsRequestSchema, {}) }, "listTopicsResponse")).topics;
    await waitFor("adoption", async () => (await listed()).some((t) => t.name === "orders"));
    const t = (await listed()).find((x) => x.name === "orders")!;
    expect(t.partitionMetadata.map((p) => [Number(p.group), [...p.replicas]])).toEqual([
      [7, [1, 2, 3]],
      [5, [3, 1, 2]],
    ]);
    await waitFor("no warnings", async () => {
      const st = await call(s.client, { case: "clusterStatus", value: create(ClusterStatusRequestSchema, {}) }, "clusterStatusResponse");
      return st.warnings.length === 0;
    });
    expect((await rejects(call(s.client, createTopic("orders", 1, 3), "createTopicResponse"))).message).toMatch(/already exists/);
    // Groups 1-4 and 6 were never handed out; the next topic's groups come after every group held.
    const other = await call(s.client, createTopic("other", 1, 3), "createTopicResponse");
    expect(Number(other.topic!.partitionMetadata[0]!.group)).toBe(8);
    expect(brokers.some((b) => b.calls.some((c) => c.kind === "removeTopic"))).toBe(false);
  });

  test("a topic config that does not parse is refused before anything is placed", async () => {
    const s = await sentinel();
    await cluster(s, 1);
    const body: Body = { case: "createTopic", value: create(CreateTopicRequestSchema, { name: "r", partitions: 1, replicas: 1, config: { "retention.ms": "soon" } }) };
    const err = await rejects(call(s.client, body, "createTopicResponse"));
    expect(err.code).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(err.message).toMatch(/retention.ms=soon/);
    const list = await call(s.client, { case: "listTopics", value: create(ListTopicsRequestSchema, {}) }, "listTopicsResponse");
    expect(list.topics.map((t) => t.name)).toEqual([]);
  });

  test("alter merges set and reset into the config, refuses what does not parse, and sends it to every replica", async () => {
    const s = await sentinel();
    const { brokers } = await cluster(s, 3);
    const made: Body = { case: "createTopic", value: create(CreateTopicRequestSchema, { name: "t", partitions: 2, replicas: 3, config: { "retention.ms": "60000" } }) };
    await call(s.client, made, "createTopicResponse");
    const alter = (set: Record<string, string>, reset: string[] = [], name = "t") =>
      call(s.client, { case: "alterTopicConfig", value: create(AlterTopicConfigRequestSchema, { name, set, reset }) }, "alterTopicConfigResponse");
    const altered = await alter({ "retention.bytes": "4096", "segment.bytes": "2048" }, ["retention.ms"]);
    expect(altered.topic!.config).toEqual({ "retention.bytes": "4096", "segment.bytes": "2048" });
    // The answer came once every replica confirmed the new epoch: each was sent the new config.
    for (const b of brokers) {
      const last = (p: number) => b.calls.filter((c) => c.kind === "setTopicRole" && c.req.partition === p).at(-1);
      for (const p of [0, 1]) {
        const call = last(p);
        expect(call?.kind === "setTopicRole" && { ...call.req.config }).toEqual({ "retention.bytes": "4096", "segment.bytes": "2048" });
      }
    }
    for (const [set, reset, name, code, text] of [
      [{ "retention.ms": "soon" }, [], "t", ErrorCode.INVALID_ARGUMENT, /retention.ms=soon/],
      [{}, ["retention.forever"], "t", ErrorCode.INVALID_ARGUMENT, /unknown topic config "retention.forever"/],
      [{ "segment.ms": "5000" }, ["segment.ms"], "t", ErrorCode.INVALID_ARGUMENT, /both set and reset/],
      [{ "retention.ms": "1" }, [], "nope", ErrorCode.UNKNOWN_TOPIC, /does not exist/],
    ] as const) {
      const err = await rejects(alter(set, [...reset], name));
      expect([err.code, err.message]).toEqual([code, expect.stringMatching(text)]);
    }
    const d = await call(s.client, { case: "describeTopic", value: create(DescribeTopicRequestSchema, { name: "t" }) }, "describeTopicResponse");
    expect([d.topic!.config, d.topic!.configUnknown]).toEqual([{ "retention.bytes": "4096", "segment.bytes": "2048" }, false]);
  });

  test("a lost topic is adopted back with the config its latest leader reports applying, and roles carry it", async () => {
    const s = await sentinel({ keepAliveMs: 20 });
    const { brokers } = await cluster(s, 3, 20);
    brokers.forEach((b, i) => {
      // Broker 3 holds the latest term; broker 1's copy of the config is stale.
      const config: Record<string, string> = i === 0 ? { "retention.ms": "1000" } : { "retention.ms": "60000", "segment.bytes": "1048576" };
      b.phantom.push(create(PartitionStatusSchema, { topic: "orders", partition: 0, group: 7n, term: BigInt(3 + i), role: Role.FOLLOWER, voters: [1, 2, 3], config }));
    });
    const describe = async () => (await call(s.client, { case: "describeTopic", value: create(DescribeTopicRequestSchema, { name: "orders" }) }, "describeTopicResponse")).topic!;
    await waitFor("adoption", async () => {
      try {
        return (await describe()) !== undefined;
      } catch {
        return false;
      }
    });
    const t = await describe();
    expect([t.config, t.configUnknown]).toEqual([{ "retention.ms": "60000", "segment.bytes": "1048576" }, false]);
    const roles = (b: (typeof brokers)[number]) => b.calls.flatMap((c) => (c.kind === "setTopicRole" && c.req.topic === "orders" ? [c.req] : []));
    await waitFor("roles sent", () => brokers.every((b) => roles(b).length > 0));
    for (const b of brokers) {
      for (const r of roles(b)) expect([r.keepConfig, { ...r.config }]).toEqual([false, { "retention.ms": "60000", "segment.bytes": "1048576" }]);
    }
  });

  test("an adopted topic's roles tell replicas to keep their config, until an alter sets one", async () => {
    const s = await sentinel({ keepAliveMs: 20 });
    const { brokers } = await cluster(s, 3, 20);
    for (const b of brokers) b.phantom.push(create(PartitionStatusSchema, { topic: "orders", partition: 0, group: 7n, term: 3n, role: Role.FOLLOWER, voters: [1, 2, 3] }));
    const describe = async () => (await call(s.client, { case: "describeTopic", value: create(DescribeTopicRequestSchema, { name: "orders" }) }, "describeTopicResponse")).topic!;
    await waitFor("adoption", async () => {
      try {
        return (await describe()).configUnknown;
      } catch {
        return false;
      }
    });
    const roles = (b: (typeof brokers)[number]) => b.calls.flatMap((c) => (c.kind === "setTopicRole" && c.req.topic === "orders" ? [c.req] : []));
    await waitFor("roles sent", () => brokers.every((b) => roles(b).length > 0));
    for (const b of brokers) expect(roles(b).every((r) => r.keepConfig)).toBe(true);
    const altered = await call(
      s.client,
      { case: "alterTopicConfig", value: create(AlterTopicConfigRequestSchema, { name: "orders", set: { "retention.ms": "60000" } }) },
      "alterTopicConfigResponse",
    );
    expect([altered.topic!.config, altered.topic!.configUnknown]).toEqual([{ "retention.ms": "60000" }, false]);
    for (const b of brokers) expect([roles(b).at(-1)!.keepConfig, { ...roles(b).at(-1)!.config }]).toEqual([false, { "retention.ms": "60000" }]);
  });

  test("InitProducer never hands out an id a broker reports having recorded (a map that lost records)", async () => {
    const s = await sentinel();
    const { brokers } = await cluster(s, 2);
    const init = () => call(s.client, { case: "initProducer", value: create(InitProducerRequestSchema, {}) }, "initProducerResponse");
    expect((await init()).producerId).toBe(1n);
    brokers[1]!.highestProducerId = 41n;
    await brokers[1]!.keepAlive();
    expect((await init()).producerId).toBe(42n);
    expect((await init()).producerId).toBe(43n);
  });

  test("InitProducer right after a sentinel restart waits to hear every broker's highest producer id", async () => {
    const dir = tempDir();
    const first = await sentinel({ keepAliveMs: 1_000 }, dir);
    const { brokers } = await cluster(first, 2);
    await first.stop();
    const s = await sentinel({ keepAliveMs: 1_000 }, dir);
    for (const b of brokers) b.useSentinel(s.address);
    await brokers[0]!.keepAlive(); // registers again, reports 0
    const pending = call(s.client, { case: "initProducer", value: create(InitProducerRequestSchema, {}) }, "initProducerResponse");
    // A request behind it on the same connection: the sentinel has begun handling InitProducer.
    await call(s.client, { case: "listTopics", value: create(ListTopicsRequestSchema, {}) }, "listTopicsResponse");
    // Only now does the other broker, whose partitions remember producer 41, beat the new sentinel.
    brokers[1]!.highestProducerId = 41n;
    await brokers[1]!.keepAlive();
    expect((await pending).producerId).toBe(42n); // handed out 1 before: the map's own counter
  });

  test("InitProducer hands out distinct ids", async () => {
    const s = await sentinel();
    const a = await call(s.client, { case: "initProducer", value: create(InitProducerRequestSchema, {}) }, "initProducerResponse");
    const b = await call(s.client, { case: "initProducer", value: create(InitProducerRequestSchema, {}) }, "initProducerResponse");
    expect(a.producerId).not.toBe(b.producerId);
  });
});

describe("sentinel leader discovery", () => {
  test("GetTopicLeader answers from what brokers report, not from the hint", async () => {
    const s = await sentinel();
    const { fc, brokers } = await cluster(s, 3);
    const created = await call(s.client, createTopic("t", 1, 3), "createTopicResponse");
    const replicas = created.topic!.partitionMetadata[0]!.replicas;
    const leaderOf = async () =>
      call(s.client, { case: "getTopicLeader", value: create(GetTopicLeaderRequestSchema, { topic: "t", partition: 0 }) }, "getTopicLeaderResponse");
    expect((await leaderOf()).partition!.leaderId).toBe(replicas[0]!); // the replicas reported it in SetTopicRole answers

    fc.elect("t", 0, replicas[2]!); // Raft chose someone else
    for (const b of brokers) await b.keepAlive();
    const r = await leaderOf();
    expect(r.partition!.leaderId).toBe(replicas[2]!);
    expect(r.partition!.leaderAddress).toBe(brokers[replicas[2]! - 1]!.address);
    expect(r.partition!.term).toBe(2n);
    expect(r.replicas.map((x) => x.id).sort()).toEqual([...replicas].sort());

    const md = await call(s.client, { case: "metadata", value: create(MetadataRequestSchema, { topics: ["t"] }) }, "metadataResponse");
    expect(md.topics[0]!.partitionMetadata[0]!.leaderId).toBe(replicas[2]!);
    expect(md.sentinels).toEqual([s.address]);
  });

  test("an 'unchanged' beat keeps the last full report; with no report to reuse the sentinel asks for a full one", async () => {
    const s = await sentinel();
    const { fc, brokers } = await cluster(s, 3);
    const created = await call(s.client, createTopic("t", 1, 3), "createTopicResponse");
    const replicas = created.topic!.partitionMetadata[0]!.replicas;
    fc.elect("t", 0, replicas[1]!);
    for (const b of brokers) await b.keepAlive();
    const beat = (brokerId: number, address: string) =>
      call(s.client, { case: "keepAlive", value: create(KeepAliveRequestSchema, { brokerId, address, unchanged: true }) }, "keepAliveResponse");
    for (const b of brokers) expect((await beat(b.id, b.address)).sendFull).toBe(false);
    const r = await call(s.client, { case: "getTopicLeader", value: create(GetTopicLeaderRequestSchema, { topic: "t", partition: 0 }) }, "getTopicLeaderResponse");
    expect(r.partition!.leaderId).toBe(replicas[1]!); // still known from the full reports
    expect(r.partition!.term).toBe(2n);

    // Registered but never reported in full: nothing to reuse.
    await call(s.client, { case: "registerBroker", value: create(RegisterBrokerRequestSchema, { brokerId: 9, address: "127.0.0.1:9" }) }, "registerBrokerResponse");
    expect((await beat(9, "127.0.0.1:9")).sendFull).toBe(true);
  });

  test("a delta beat replaces the statuses it carries and keeps the others; with no report to build on, a full one is asked", async () => {
    const s = await sentinel();
    const { fc, brokers } = await cluster(s, 3);
    const created = await call(s.client, createTopic("t", 2, 3), "createTopicResponse");
    for (const b of brokers) await b.keepAlive();
    const leaderOf = async (partition: number) =>
      (await call(s.client, { case: "getTopicLeader", value: create(GetTopicLeaderRequestSchema, { topic: "t", partition }) }, "getTopicLeaderResponse"))
        .partition!;
    const before = await leaderOf(1);

    // Raft elects another leader of partition 0; the brokers' deltas carry only that partition.
    const replicas = created.topic!.partitionMetadata[0]!.replicas;
    fc.elect("t", 0, replicas[2]!);
    const delta = (brokerId: number, address: string, partitions: ReturnType<FakeBroker["statuses"]>) =>
      call(s.client, { case: "keepAlive", value: create(KeepAliveRequestSchema, { brokerId, address, delta: true, partitions }) }, "keepAliveResponse");
    for (const b of brokers) {
      const changed = b.statuses().filter((st) => st.partition === 0);
      expect((await delta(b.id, b.address, changed)).sendFull).toBe(false);
    }
    const after0 = await leaderOf(0);
    expect([after0.leaderId, after0.term]).toEqual([replicas[2]!, 2n]);
    const after1 = await leaderOf(1); // not in the deltas: as the full reports said
    expect([after1.leaderId, after1.term]).toEqual([before.leaderId, before.term]);

    await call(s.client, { case: "registerBroker", value: create(RegisterBrokerRequestSchema, { brokerId: 9, address: "127.0.0.1:9" }) }, "registerBrokerResponse");
    expect((await delta(9, "127.0.0.1:9", [])).sendFull).toBe(true);
  });

  test("during an election GetTopicLeader waits for the winner instead of failing at once", async () => {
    const s = await sentinel({ keepAliveMs: 50, suspiciousAfterMs: 20_000, downAfterMs: 60_000 });
    const { fc, brokers } = await cluster(s, 3);
    const created = await call(s.client, createTopic("t", 1, 3), "createTopicResponse");
    const [old, next] = created.topic!.partitionMetadata[0]!.replicas as [number, number, number];
    brokers[old - 1]!.kill();
    const truth = fc.get("t", 0)!;
    truth.leader = 0; // survivors are campaigning
    truth.term++;
    const asked = call(
      s.client,
      { case: "getTopicLeader", value: create(GetTopicLeaderRequestSchema, { topic: "t", partition: 0, unreachableBrokers: [old] }) },
      "getTopicLeaderResponse",
    );
    await waitFor("the sentinel probing the survivors", () => brokers[next - 1]!.calls.some((c) => c.kind === "getBrokerTopicRole"));
    fc.elect("t", 0, next);
    expect((await asked).partition!.leaderId).toBe(next);
  });

  test("an unreachable report does not evict a healthy broker; a dead one is confirmed by the probe", async () => {
    // Down only after a long silence, so any eviction here must come from the probe.
    const s = await sentinel({ keepAliveMs: 50, suspiciousAfterMs: 20_000, downAfterMs: 60_000 });
    const { fc, brokers } = await cluster(s, 3);
    const created = await call(s.client, createTopic("t", 1, 3), "createTopicResponse");
    const [first, second] = created.topic!.partitionMetadata[0]!.replicas as [number, number, number];
    const ask = (unreachable: number[]) =>
      call(
        s.client,
        { case: "getTopicLeader", value: create(GetTopicLeaderRequestSchema, { topic: "t", partition: 0, unreachableBrokers: unreachable }) },
        "getTopicLeaderResponse",
      );
    const health = async (id: number) => {
      const st = await call(s.client, { case: "clusterStatus", value: create(ClusterStatusRequestSchema, {}) }, "clusterStatusResponse");
      return st.brokers.find((b) => b.id === id)!.health;
    };

    const lie = await ask([first]);
    expect(lie.partition!.leaderId).toBe(first);
    expect(await health(first)).toBe(BrokerHealth.HEALTHY);
    expect(brokers[first - 1]!.calls.some((c) => c.kind === "getBrokerTopicRole")).toBe(true); // it did probe

    brokers[first - 1]!.kill();
    fc.elect("t", 0, second); // the survivors elect a new leader; no KeepAlive has told the sentinel yet
    const truth = await ask([first]);
    expect(await health(first)).toBe(BrokerHealth.DOWN);
    expect(truth.partition!.leaderId).toBe(second); // learned from probing the other replicas
  });
});

describe("sentinel failover", () => {
  test("a down replica is replaced through its leader: add learner, catch up, promote, remove", async () => {
    const s = await sentinel({ keepAliveMs: 20, suspiciousAfterMs: 100, downAfterMs: 300 });
    const { fc, brokers } = await cluster(s, 4, 20);
    fc.catchUpPerBeat = 4; // the learner needs a few leader beats to reach commit 10
    const created = await call(s.client, createTopic("t", 1, 3), "createTopicResponse");
    const replicas = [...created.topic!.partitionMetadata[0]!.replicas];
    const spare = [1, 2, 3, 4].find((b) => !replicas.includes(b))!;
    const [leader, , victim] = replicas as [number, number, number];
    brokers[victim - 1]!.kill();

    const truth = () => fc.get("t", 0)!;
    await waitFor("replacement", () => truth().voters.includes(spare) && !truth().voters.includes(victim), 5_000);
    const changes = brokers[leader - 1]!.calls.flatMap((c) => (c.kind === "changeReplicas" ? [c] : []));
    const steps = changes.map((c) => (c.req.addLearner ? `add:${c.req.addLearner.id}` : c.req.promote ? `promote:${c.req.promote}` : `remove:${c.req.remove}`));
    expect(steps).toEqual([`add:${spare}`, `promote:${spare}`, `remove:${victim}`]);
    const promote = changes[1]!;
    expect(promote.truth.match).toBeGreaterThanOrEqual(promote.truth.commit); // caught up before promotion
    // the learner was told its role before the leader added it
    expect(brokers[spare - 1]!.calls.some((c) => c.kind === "setTopicRole" && c.req.role === Role.LEARNER)).toBe(true);

    const describe = async () =>
      (await call(s.client, { case: "describeTopic", value: create(DescribeTopicRequestSchema, { name: "t" }) }, "describeTopicResponse")).topic!;
    await waitFor("map updated", async () => {
      const t = await describe();
      return [...t.partitionMetadata[0]!.replicas].sort().join() === replicas.map((b) => (b === victim ? spare : b)).sort().join();
    });

    // The replaced broker comes back: it still has the partition on disk and is told to remove it.
    await brokers[victim - 1]!.revive(20);
    brokers[victim - 1]!.hosted.add("t/0");
    await waitFor("cleanup of the replaced replica", () => !brokers[victim - 1]!.hosted.has("t/0"));
  });

  test("cluster status lists a replacement while it runs, with its step, and drops it once done", async () => {
    const s = await sentinel({ keepAliveMs: 20, suspiciousAfterMs: 100, downAfterMs: 300 });
    const { fc, brokers } = await cluster(s, 4, 20);
    fc.catchUpPerBeat = 0; // the learner never catches up until the test says so
    const created = await call(s.client, createTopic("t", 1, 3), "createTopicResponse");
    const replicas = [...created.topic!.partitionMetadata[0]!.replicas];
    const spare = [1, 2, 3, 4].find((b) => !replicas.includes(b))!;
    const victim = replicas[2]!;
    brokers[victim - 1]!.kill();
    const changes = async () =>
      (await call(s.client, { case: "clusterStatus", value: create(ClusterStatusRequestSchema, {}) }, "clusterStatusResponse")).changes;
    await waitFor("a change catching up", async () => (await changes()).some((c) => c.step === "catching-up"), 5_000);
    const [c] = await changes();
    expect({ topic: c!.topic, partition: c!.partition, kind: c!.kind, from: c!.fromBroker, to: c!.toBroker }).toEqual({
      topic: "t",
      partition: 0,
      kind: "replace",
      from: victim,
      to: spare,
    });
    fc.catchUpPerBeat = Number.POSITIVE_INFINITY;
    await waitFor("the change done", async () => (await changes()).length === 0 && !fc.get("t", 0)!.voters.includes(victim), 5_000);
  });

  test("a replacement abandoned after its promotion leaves no partition over-replicated", async () => {
    const s = await sentinel({ keepAliveMs: 20, suspiciousAfterMs: 100, downAfterMs: 300 });
    const { fc, brokers } = await cluster(s, 4, 20);
    const created = await call(s.client, createTopic("t", 1, 3), "createTopicResponse");
    const replicas = [...created.topic!.partitionMetadata[0]!.replicas];
    const spare = brokers[[1, 2, 3, 4].find((b) => !replicas.includes(b))! - 1]!;
    const victim = brokers[replicas[2]! - 1]!;
    const leader = brokers[fc.get("t", 0)!.leader - 1]!;
    fc.refuseRemove = true; // the old replica cannot be removed yet: four voters for a while
    victim.kill();
    await waitFor("the replacement promoted", () => fc.get("t", 0)!.voters.includes(spare.id), 5_000);
    const since = leader.calls.length;
    spare.kill(); // and the replacement dies before the old one is removed: the map takes Raft's four voters
    // The map's members (voters and learners), as the notifier tells them to the leader (describe shows Raft's).
    const sizes = () =>
      leader.calls.slice(since).flatMap((c) => (c.kind === "setTopicRole" && c.req.topic === "t" ? [c.req.followers.length + c.req.learners.length + 1] : []));
    // The first change of the map after that kill takes Raft's four voters, and drops the dead old one.
    await waitFor("three replicas in the map", () => sizes().at(-1) === 3, 5_000);
    fc.refuseRemove = false;
    await spare.revive(20);
    await victim.revive(20);
    // Back to three replicas in the map and in Raft, the same three.
    const describe = async () =>
      (await call(s.client, { case: "describeTopic", value: create(DescribeTopicRequestSchema, { name: "t" }) }, "describeTopicResponse")).topic!
        .partitionMetadata[0]!;
    await waitFor("Raft agrees", async () => {
      const d = await describe();
      return d.replicas.length === 3 && [...d.replicas].sort().join() === [...fc.get("t", 0)!.voters].sort().join();
    }, 10_000);
    expect(fc.get("t", 0)!.voters.length).toBe(3);
  });

  test("a learner whose broker dies after a restarted sentinel forgot its replacement is dropped, from the map and Raft", async () => {
    const opts = { keepAliveMs: 20, suspiciousAfterMs: 100, downAfterMs: 300, balanceAfterMs: 0 };
    const dataDir = tempDir();
    const s1 = await sentinel(opts, dataDir);
    const { fc, brokers } = await cluster(s1, 4, 20);
    fc.catchUpPerBeat = 0; // the learner never catches up: the replacement stays at its learner step
    const created = await call(s1.client, createTopic("t", 1, 3), "createTopicResponse");
    const replicas = [...created.topic!.partitionMetadata[0]!.replicas];
    const spare = brokers[[1, 2, 3, 4].find((b) => !replicas.includes(b))! - 1]!;
    const victim = brokers[replicas[2]! - 1]!;
    victim.kill();
    await waitFor("the spare added as a learner", () => fc.get("t", 0)!.learners.includes(spare.id), 5_000);

    // The sentinel restarts (the replacement's plan is lost), then the learner's broker dies.
    await s1.stop();
    const s2 = await sentinel(opts, dataDir);
    for (const b of brokers) if (b !== victim) b.useSentinel(s2.address);
    spare.kill();
    // Nothing could finish or abandon that replacement: the dead learner leaves the map, and Raft.
    await waitFor("the dead learner dropped", () => !fc.get("t", 0)!.learners.includes(spare.id), 10_000);
    const d = await call(s2.client, { case: "describeTopic", value: create(DescribeTopicRequestSchema, { name: "t" }) }, "describeTopicResponse");
    expect([...d.topic!.partitionMetadata[0]!.learners]).toEqual([]);
  });

  test("a Raft member the map does not name is removed through the leader", async () => {
    const s = await sentinel({ keepAliveMs: 20 });
    const { fc, brokers } = await cluster(s, 4, 20);
    const created = await call(s.client, createTopic("t", 1, 3), "createTopicResponse");
    const replicas = [...created.topic!.partitionMetadata[0]!.replicas];
    const stray = [1, 2, 3, 4].find((b) => !replicas.includes(b))!;
    fc.get("t", 0)!.learners.push(stray); // e.g. a replacement abandoned after the leader had added it
    await waitFor("stray removed", () => !fc.get("t", 0)!.learners.includes(stray));
    const leader = brokers[replicas[0]! - 1]!;
    const removals = leader.calls.filter((c) => c.kind === "changeReplicas" && c.req.remove === stray);
    expect(removals.length).toBe(1);
    expect([...fc.get("t", 0)!.voters].sort()).toEqual([...replicas].sort());
  });

  test("a live replica the map names but Raft dropped is added back as learner then promoted", async () => {
    const s = await sentinel({ keepAliveMs: 20 });
    const { fc, brokers } = await cluster(s, 3, 20);
    const created = await call(s.client, createTopic("t", 1, 3), "createTopicResponse");
    const [leader, , dropped] = created.topic!.partitionMetadata[0]!.replicas as [number, number, number];
    const truth = fc.get("t", 0)!;
    truth.voters = truth.voters.filter((v) => v !== dropped); // an abandoned change had removed it
    await waitFor("re-added", () => fc.get("t", 0)!.voters.includes(dropped));
    const steps = brokers[leader - 1]!.calls.flatMap((c) =>
      c.kind === "changeReplicas" ? [c.req.addLearner ? `add:${c.req.addLearner.id}` : c.req.promote ? `promote:${c.req.promote}` : `remove:${c.req.remove}`] : [],
    );
    expect(steps).toEqual([`add:${dropped}`, `promote:${dropped}`]);
  });

  test("a replica that left its group (its broker up) is replaced, never on a broker that reports a storage fault", async () => {
    const s = await sentinel({ keepAliveMs: 20 });
    const { fc, brokers } = await cluster(s, 4, 20);
    const created = await call(s.client, createTopic("t", 1, 3), "createTopicResponse");
    const replicas = [...created.topic!.partitionMetadata[0]!.replicas];
    const spare = brokers[[1, 2, 3, 4].find((b) => !replicas.includes(b))! - 1]!;
    const [leader, , victim] = replicas as [number, number, number];
    // The only free broker cannot store either: nothing moves while it says so. (It says so before the
    // replica leaves: each fake broker beats on its own timer, and the sentinel must know both.)
    spare.storageError = "t/9: disk full";
    await spare.keepAlive();
    brokers[victim - 1]!.storageError = "t/0: disk full";
    brokers[victim - 1]!.left.add("t/0");
    const changes = () => brokers[leader - 1]!.calls.filter((c) => c.kind === "changeReplicas").length;
    await Bun.sleep(400); // twenty beats: failover runs at each
    expect(changes()).toBe(0);
    expect(spare.calls.some((c) => c.kind === "setTopicRole" && c.req.topic === "t")).toBe(false);
    // Its disk mended: the left replica is replaced there, as a dead broker's would be.
    spare.storageError = "";
    const truth = () => fc.get("t", 0)!;
    await waitFor("replacement", () => truth().voters.includes(spare.id) && !truth().voters.includes(victim), 5_000);
    const steps = brokers[leader - 1]!.calls.flatMap((c) => (c.kind === "changeReplicas" ? [c.req.addLearner ? `add:${c.req.addLearner.id}` : c.req.promote ? `promote:${c.req.promote}` : `remove:${c.req.remove}`] : []));
    expect(steps).toEqual([`add:${spare.id}`, `promote:${spare.id}`, `remove:${victim}`]);
  });

  test("a new topic is not placed on a broker that reports a storage fault", async () => {
    const s = await sentinel({ keepAliveMs: 20 });
    const { brokers } = await cluster(s, 4, 20);
    const faulty = brokers[1]!;
    faulty.storageError = "wal: disk full while writing WAL";
    await faulty.keepAlive();
    for (let i = 0; i < 6; i++) {
      const t = await call(s.client, createTopic(`t${i}`, 2, 3), "createTopicResponse");
      for (const p of t.topic!.partitionMetadata) expect([...p.replicas]).not.toContain(faulty.id);
    }
    const refused = await call(s.client, createTopic("four", 1, 4), "createTopicResponse").catch((e) => e);
    expect((refused as WireError).code).toBe(ErrorCode.NOT_ENOUGH_BROKERS);
    expect((refused as WireError).message).toMatch(/only 3 broker\(s\) can take them \(healthy, no storage fault\)/);
    // Once it reports none, it takes replicas again.
    faulty.storageError = "";
    await faulty.keepAlive();
    expect((await call(s.client, createTopic("four", 1, 4), "createTopicResponse")).topic!.partitionMetadata[0]!.replicas).toContain(faulty.id);
  });

  test("a broker that comes back before it is replaced rejoins without changes", async () => {
    const s = await sentinel({ keepAliveMs: 20, suspiciousAfterMs: 60, downAfterMs: 400 });
    const { fc, brokers } = await cluster(s, 4, 20);
    const created = await call(s.client, createTopic("t", 1, 3), "createTopicResponse");
    const replicas = [...created.topic!.partitionMetadata[0]!.replicas];
    const victim = brokers[replicas[1]! - 1]!;
    victim.kill();
    const st = async () => (await call(s.client, { case: "clusterStatus", value: create(ClusterStatusRequestSchema, {}) }, "clusterStatusResponse")).brokers;
    await waitFor("suspicious", async () => (await st()).find((b) => b.id === victim.id)!.health === BrokerHealth.SUSPICIOUS);
    await victim.revive(20);
    await waitFor("healthy", async () => (await st()).find((b) => b.id === victim.id)!.health === BrokerHealth.HEALTHY);
    expect([...fc.get("t", 0)!.voters].sort()).toEqual([...replicas].sort());
    expect(brokers.flatMap((b) => b.calls).some((c) => c.kind === "changeReplicas")).toBe(false);
  });
});

/** What a broker was asked to change, in order: add:N, promote:N, remove:N, transfer:N. */
function changeSteps(b: FakeBroker, topic: string, partition: number): string[] {
  return b.calls.flatMap((c) =>
    c.kind === "changeReplicas" && c.req.topic === topic && c.req.partition === partition
      ? [
          c.req.addLearner ? `add:${c.req.addLearner.id}`
          : c.req.promote ? `promote:${c.req.promote}`
          : c.req.transferLeaderTo ? `transfer:${c.req.transferLeaderTo}`
          : `remove:${c.req.remove}`,
        ]
      : [],
  );
}

describe("sentinel balance", () => {
  test("a broker that joins gets its ring share once healthy long enough, one replica at a time; a leaving leader hands over first", async () => {
    const s = await sentinel({ keepAliveMs: 20, balanceAfterMs: 300 });
    const { fc, brokers } = await cluster(s, 3, 20);
    await call(s.client, createTopic("t", 8, 3), "createTopicResponse");
    const wanted = ringPlacement([1, 2, 3, 4], "t", 8, 3);
    const moving = wanted.flatMap((w, p) => (w.split(",").includes("4") ? [p] : []));
    expect(moving.length).toBeGreaterThan(0); // the ring gives the fourth broker some of these eight
    // Raft's leader of every partition that moves is the replica that must leave.
    const leaving = new Map<number, number>();
    for (const p of moving) {
      const gone = fc.get("t", p)!.voters.find((v) => !wanted[p]!.split(",").map(Number).includes(v))!;
      leaving.set(p, gone);
      fc.elect("t", p, gone);
    }
    const joining = await fc.add(4, s.address, 20);
    brokers.push(joining);
    const describe = async () =>
      (await call(s.client, { case: "describeTopic", value: create(DescribeTopicRequestSchema, { name: "t" }) }, "describeTopicResponse")).topic!;
    await waitFor("map on the ring", async () => (await describe()).partitionMetadata.every((m) => replicaSet(m.replicas) === wanted[m.partition]), 15_000);
    // Nothing moved before the broker had been healthy for balanceAfterMs: the first change reached a
    // leader at least that long after the joining broker sent its registration.
    const firstChange = Math.min(...brokers.flatMap((b) => b.changeTimes));
    expect(firstChange - joining.registerSentAt).toBeGreaterThanOrEqual(300);
    for (let p = 0; p < 8; p++) {
      expect(replicaSet(fc.get("t", p)!.voters)).toBe(wanted[p]!);
      expect(fc.get("t", p)!.learners).toEqual([]);
      if (!moving.includes(p)) {
        for (const b of brokers) expect(changeSteps(b, "t", p)).toEqual([]);
        continue;
      }
      const gone = leaving.get(p)!;
      const [first, hint] = changeSteps(brokers[gone - 1]!, "t", p).slice(2) as [string, string | undefined];
      expect(changeSteps(brokers[gone - 1]!, "t", p).slice(0, 2)).toEqual(["add:4", "promote:4"]);
      expect(first).toMatch(/^transfer:\d$/);
      expect(hint).toBeUndefined(); // it never removed itself
      const heir = Number(first.split(":")[1]);
      expect(heir).not.toBe(gone);
      expect(changeSteps(brokers[heir - 1]!, "t", p)).toEqual([`remove:${gone}`]);
    }
  });

  test("a broker back from an outage gets its replicas back once healthy long enough", async () => {
    const s = await sentinel({ keepAliveMs: 20, suspiciousAfterMs: 100, downAfterMs: 300, balanceAfterMs: 400 });
    const { fc, brokers } = await cluster(s, 4, 20);
    await call(s.client, createTopic("t", 1, 3), "createTopicResponse");
    const placed = replicaSet(fc.get("t", 0)!.voters);
    expect(placed).toBe(ringPlacement([1, 2, 3, 4], "t", 1, 3)[0]!);
    const victim = brokers[fc.get("t", 0)!.voters.find((v) => v !== fc.get("t", 0)!.leader)! - 1]!;
    victim.kill();
    await waitFor("replaced", () => !fc.get("t", 0)!.voters.includes(victim.id) && fc.get("t", 0)!.voters.length === 3, 5_000);
    const changesBefore = brokers.flatMap((b) => b.changeTimes).length;
    await victim.revive(20); // still holding its old replica: the sentinel removes it, then moves one back
    await waitFor("back on the ring", () => replicaSet(fc.get("t", 0)!.voters) === placed && fc.get("t", 0)!.learners.length === 0, 10_000);
    const moveBack = brokers.flatMap((b) => b.changeTimes).sort((a, b) => a - b).slice(changesBefore);
    expect(moveBack.length).toBeGreaterThan(0);
    expect(moveBack[0]! - victim.registerSentAt).toBeGreaterThanOrEqual(400);
    await waitFor("map back on the ring", async () => {
      const d = await call(s.client, { case: "describeTopic", value: create(DescribeTopicRequestSchema, { name: "t" }) }, "describeTopicResponse");
      return replicaSet(d.topic!.partitionMetadata[0]!.replicas) === placed;
    });
    expect(victim.hosted.has("t/0")).toBe(true);
  });

  test("with balance off (0) a joining broker gets nothing of existing topics", async () => {
    const s = await sentinel({ keepAliveMs: 20, balanceAfterMs: 0 });
    const { fc } = await cluster(s, 3, 20);
    await call(s.client, createTopic("t", 8, 3), "createTopicResponse");
    const b4 = await fc.add(4, s.address, 20);
    await Bun.sleep(600); // thirty beats: the scans ran many times
    expect([...fc.brokers.values()].flatMap((b) => b.calls).some((c) => c.kind === "changeReplicas")).toBe(false);
    expect(b4.calls.some((c) => c.kind === "setTopicRole")).toBe(false);
  });
});

describe("sentinel durability", () => {
  test("a restarted sentinel keeps its topics, and brokers re-register when told", async () => {
    const dataDir = tempDir();
    const s1 = await sentinel({}, dataDir);
    const { fc, brokers } = await cluster(s1, 3);
    const created = await call(s1.client, createTopic("keep", 2, 3), "createTopicResponse");
    const p1 = await call(s1.client, { case: "initProducer", value: create(InitProducerRequestSchema, {}) }, "initProducerResponse");
    await s1.stop();
    // Meanwhile Raft moved leadership of keep/0 away from the first replica (the placement hint).
    const raftLeader = created.topic!.partitionMetadata[0]!.replicas[2]!;
    fc.elect("keep", 0, raftLeader);
    const callsBefore = brokers.map((b) => b.calls.length);

    const s2 = await sentinel({}, dataDir);
    const st1 = await call(s2.client, { case: "clusterStatus", value: create(ClusterStatusRequestSchema, {}) }, "clusterStatusResponse");
    expect(st1.brokers.length).toBe(3);
    const d = await call(s2.client, { case: "describeTopic", value: create(DescribeTopicRequestSchema, { name: "keep" }) }, "describeTopicResponse");
    expect(d.topic!.partitionMetadata.map((p) => [p.group, [...p.replicas]])).toEqual(
      created.topic!.partitionMetadata.map((p) => [p.group, [...p.replicas]]),
    );
    const p2 = await call(s2.client, { case: "initProducer", value: create(InitProducerRequestSchema, {}) }, "initProducerResponse");
    expect(p2.producerId).toBeGreaterThan(p1.producerId);
    for (const b of brokers) {
      b.useSentinel(s2.address);
      await b.keepAlive();
      expect(b.unknownBrokerAnswers).toBe(1);
    }
    // Every broker is told its roles again, and the restarted sentinel's hint follows Raft's leader, never
    // the placement's first replica. A role sent before Raft's leader has beaten again names no leader
    // (the sentinel counts a broker it has not heard since its restart as not alive yet): only a hint.
    const rolesAfter = (b: FakeBroker) =>
      b.calls.slice(callsBefore[b.id - 1]).flatMap((c) => (c.kind === "setTopicRole" && c.req.topic === "keep" && c.req.partition === 0 ? [c.req] : []));
    await waitFor("roles re-sent", () => brokers.every((b) => rolesAfter(b).length > 0));
    expect(created.topic!.partitionMetadata[0]!.replicas[0]).not.toBe(raftLeader);
    for (const b of brokers) {
      for (const r of rolesAfter(b)) {
        expect([raftLeader, 0]).toContain(r.leaderId);
        expect(r.role).toBe(b.id === r.leaderId ? Role.LEADER : Role.FOLLOWER);
      }
    }
    expect(rolesAfter(brokers[raftLeader - 1]!).at(-1)!.leaderId).toBe(raftLeader); // it had beaten by then
    // and the new topic ids never collide with the old ones
    const t2 = await call(s2.client, createTopic("next", 1, 3), "createTopicResponse");
    const oldGroups = created.topic!.partitionMetadata.map((p) => p.group);
    expect(oldGroups).not.toContain(t2.topic!.partitionMetadata[0]!.group);
  });
});

describe("sentinel consumer groups", () => {
  test("members share partitions; a silent member is removed and the others rebalance", async () => {
    const s = await sentinel();
    await cluster(s, 1);
    await call(s.client, createTopic("events", 4, 1), "createTopicResponse");
    const join = (memberId: string, sessionTimeoutMs: number) =>
      call(
        s.client,
        { case: "joinGroup", value: create(JoinGroupRequestSchema, { groupId: "g", memberId, topics: ["events"], sessionTimeoutMs }) },
        "joinGroupResponse",
      );
    const beat = (memberId: string, generation: number) =>
      s.client.call({ case: "groupHeartbeat", value: create(GroupHeartbeatRequestSchema, { groupId: "g", memberId, generation }) });

    const a = await join("", 10_000);
    expect(a.assignment[0]!.partitions).toEqual([0, 1, 2, 3]);
    const b = await join("", 150);
    expect(b.assignment[0]!.partitions).toEqual([2, 3]);
    const rebalance = await rejects(beat(a.memberId, a.generation).then((r) => expectCase(r, "groupHeartbeatResponse")));
    expect(rebalance.code).toBe(ErrorCode.REBALANCE_IN_PROGRESS);
    const a2 = await join(a.memberId, 10_000);
    expect(a2.assignment[0]!.partitions).toEqual([0, 1]);

    // b stops heartbeating: past its 150 ms session it is removed and a gets everything back
    await waitFor("rebalance after expiry", async () => {
      const r = await beat(a.memberId, a2.generation);
      return r.case === "error" && r.value.error?.code === ErrorCode.REBALANCE_IN_PROGRESS;
    });
    const a3 = await join(a.memberId, 10_000);
    expect(a3.assignment[0]!.partitions).toEqual([0, 1, 2, 3]);
    const unknown = await rejects(join("", 10_000).then(() => s.client.call({ case: "joinGroup", value: create(JoinGroupRequestSchema, { groupId: "g", topics: ["nope"] }) })).then((r) => expectCase(r, "joinGroupResponse")));
    expect(unknown.code).toBe(ErrorCode.UNKNOWN_TOPIC);
  });
});
