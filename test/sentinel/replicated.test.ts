import { afterEach, describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ClusterStatusRequestSchema, CreateTopicRequestSchema, DescribeTopicRequestSchema, ErrorCode, RegisterBrokerRequestSchema } from "../../src/proto/goulette_pb";
import { startSentinel, type RunningSentinel } from "../../src/sentinel";
import { sentinelDefaults } from "../../src/sentinel/options";
import { WireClient, WireError, expectCase } from "../../src/wire";
import { FakeCluster, waitFor } from "./fake-broker";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Ports the OS just handed out and took back: the sentinels must know each other's before listening. */
function freePorts(n: number): number[] {
  const listeners = Array.from({ length: n }, () => Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } }));
  const ports = listeners.map((l) => l.port);
  for (const l of listeners) l.stop(true);
  return ports;
}

interface Node {
  id: number;
  address: string;
  running: RunningSentinel | undefined;
  client: WireClient;
}

/** Which node leads: the one that answers ClusterStatus (the others redirect). */
async function leaderOf(nodes: Node[]): Promise<Node | undefined> {
  for (const n of nodes) {
    if (!n.running) continue;
    const res = await n.client.call({ case: "clusterStatus", value: create(ClusterStatusRequestSchema, {}) }, { timeoutMs: 1_000 }).catch(() => undefined);
    if (res && res.case === "clusterStatusResponse") return n;
  }
  return undefined;
}

describe("three sentinels", () => {
  test("one leads and the others redirect; after the leader dies a new one serves the same map", async () => {
    const ports = freePorts(3);
    const peers = ports.map((p) => `127.0.0.1:${p}`);
    const nodes: Node[] = [];
    for (let i = 0; i < 3; i++) {
      const dataDir = mkdtempSync(join(tmpdir(), `goulette-sentinel${i + 1}-`));
      cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
      const running = await startSentinel({ ...sentinelDefaults, listen: peers[i]!, dataDir, peers, id: i + 1, logLevel: "error" });
      const node: Node = { id: i + 1, address: peers[i]!, running, client: new WireClient(peers[i]!, { requestTimeoutMs: 2_000, backoffMaxMs: 100 }) };
      nodes.push(node);
      cleanups.push(async () => {
        node.client.close();
        await node.running?.stop();
      });
    }
    let leader: Node | undefined;
    await waitFor("a sentinel leader", async () => (leader = await leaderOf(nodes)) !== undefined, 8_000);
    const first = leader!;

    const follower = nodes.find((n) => n !== first)!;
    // A follower names the leader once it has heard from it (the leader's first heartbeat).
    let err: WireError | undefined;
    await waitFor("a redirect naming the leader", async () => {
      const redirect = await follower.client.call({ case: "clusterStatus", value: create(ClusterStatusRequestSchema, {}) });
      try {
        expectCase(redirect, "clusterStatusResponse");
      } catch (e) {
        err = e as WireError;
      }
      return err?.leaderAddress !== "";
    });
    expect(err?.code).toBe(ErrorCode.NOT_SENTINEL_LEADER);
    expect(err?.leaderAddress).toBe(first.address);

    const fc = new FakeCluster();
    cleanups.push(() => fc.stopAll());
    const brokers = [await fc.add(1, first.address), await fc.add(2, first.address), await fc.add(3, first.address)];
    const created = expectCase(
      await first.client.call({ case: "createTopic", value: create(CreateTopicRequestSchema, { name: "kept", partitions: 2, replicas: 3 }) }),
      "createTopicResponse",
    );

    const firstClusterId = expectCase(
      await first.client.call({ case: "registerBroker", value: create(RegisterBrokerRequestSchema, { brokerId: 1, address: brokers[0]!.address }) }),
      "registerBrokerResponse",
    ).clusterId;
    await first.running!.stop();
    first.running = undefined;
    let second: Node | undefined;
    await waitFor("a new sentinel leader", async () => (second = await leaderOf(nodes)) !== undefined, 8_000);
    expect(second!.id).not.toBe(first.id);

    const described = expectCase(
      await second!.client.call({ case: "describeTopic", value: create(DescribeTopicRequestSchema, { name: "kept" }) }),
      "describeTopicResponse",
    );
    expect(described.topic!.partitionMetadata.map((p) => p.group)).toEqual(created.topic!.partitionMetadata.map((p) => p.group));

    // The cluster id is part of the replicated map: the new leader hands out the same one.
    const idFrom = async (n: { client: WireClient }) =>
      expectCase(
        await n.client.call({ case: "registerBroker", value: create(RegisterBrokerRequestSchema, { brokerId: 1, address: brokers[0]!.address }) }),
        "registerBrokerResponse",
      ).clusterId;
    expect(firstClusterId).not.toBe("");
    expect(await idFrom(second!)).toBe(firstClusterId);

    // Brokers follow to the new leader: it does not know them yet, so they register again.
    for (const b of brokers) {
      b.useSentinel(second!.address);
      await b.keepAlive();
      expect(b.unknownBrokerAnswers).toBe(b.id === 1 ? 0 : 1); // 1 already registered above
    }
    const next = expectCase(
      await second!.client.call({ case: "createTopic", value: create(CreateTopicRequestSchema, { name: "after", partitions: 1, replicas: 3 }) }),
      "createTopicResponse",
    );
    const oldGroups = created.topic!.partitionMetadata.map((p) => p.group);
    expect(oldGroups).not.toContain(next.topic!.partitionMetadata[0]!.group);
  }, 30_000);
});
