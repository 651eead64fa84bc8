// A producer keeps sending while the partition leader's disk fills: every send still succeeds, once, through
// the replica that takes over, and a consumer reads each value at the offset it was acknowledged with.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { FaultyFileLayer } from "../../src/storage";
import { Consumer, Producer, type ConsumedMessage } from "../../src/client/index";
import { createTopicWhenReady, startInProcessCluster, type InProcessCluster } from "../in-process-cluster";

const disks = [new FaultyFileLayer(), new FaultyFileLayer(), new FaultyFileLayer()];
let cluster: InProcessCluster;

beforeAll(async () => {
  cluster = await startInProcessCluster("goulette-disk-full-", { disks });
});

afterAll(async () => {
  await cluster?.stop();
});

async function leaderOf(topic: string): Promise<number> {
  const { admin } = cluster;
  const until = Date.now() + 10_000;
  for (;;) {
    const leader = (await admin.describeTopic(topic)).partitionInfo[0]!.leader;
    if (leader !== 0) return leader;
    if (Date.now() > until) throw new Error(`${topic}/0 has no leader`);
    await Bun.sleep(20);
  }
}

test("sends in flight when the leader's disk fills are delivered once, through another replica", async () => {
  const { admin, sentinel } = cluster;
  await createTopicWhenReady(admin, "df", 1, 3);
  const leader = await leaderOf("df");
  const producer = new Producer({ sentinels: [sentinel.address], deliveryTimeoutMs: 15_000 });
  const offsets = new Map<string, number>();
  const send = (value: string) => producer.send("df", [{ value }]).then(([a]) => void offsets.set(value, a!.offset));

  await Promise.all(Array.from({ length: 100 }, (_, i) => send(`before-${i}`)));
  const during = Array.from({ length: 300 }, (_, i) => send(`during-${i}`));
  const disk = disks[leader - 1]!;
  disk.pathContains = "/.wal/";
  disk.writeBudgetBytes = 0;
  await Promise.all(during);
  await producer.close();
  expect(offsets.size).toBe(400);
  expect(new Set(offsets.values()).size).toBe(400);
  expect(await leaderOf("df")).not.toBe(leader);
  // Operators see which broker cannot store, and why, in the cluster status.
  const seenUntil = Date.now() + 10_000;
  let errors: string[] = [];
  while (Date.now() < seenUntil) {
    errors = (await admin.clusterStatus()).brokers.map((b) => b.storageError);
    if (errors[leader - 1] !== "") break;
    await Bun.sleep(50);
  }
  expect(errors[leader - 1]).toMatch(/^wal: disk full while writing WAL/);
  expect(errors.filter((e) => e !== "").length).toBe(1);

  const consumer = new Consumer({ sentinels: [sentinel.address], readFrom: "leader", maxWaitMs: 200 });
  await consumer.assignTopic("df", "beginning");
  const got: ConsumedMessage[] = [];
  const readUntil = Date.now() + 10_000;
  while (got.length < 400 && Date.now() < readUntil) got.push(...(await consumer.poll(200)));
  got.push(...(await consumer.poll(300))); // anything beyond the 400 would be a duplicate
  await consumer.close();
  const dec = new TextDecoder();
  expect(got.map((m) => [dec.decode(m.value), m.offset]).sort()).toEqual([...offsets].sort());
}, 60_000);
