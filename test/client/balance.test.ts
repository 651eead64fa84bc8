// A broker added to a running cluster gets its share of the existing partitions (their ring placement),
// moved one replica at a time while producers keep writing: the moved replicas hold every acknowledged
// record, byte for byte as the others, and nothing acknowledged is lost or moved.
import { afterEach, expect, test } from "bun:test";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Consumer, Producer, type ConsumedMessage } from "../../src/client/index";
import { replicaSet, ringPlacement } from "../ring-placement";
import { createTopicWhenReady, startInProcessCluster, until, withLeader, type InProcessCluster } from "../in-process-cluster";

let cluster: InProcessCluster | undefined;

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

const PARTITIONS = 4;

test("a fourth broker gets its ring share of a topic's replicas, moved under load with every record intact", async () => {
  const c = (cluster = await startInProcessCluster("goulette-balance-", { sentinel: { balanceAfterMs: 1_000 } }));
  const { admin, sentinel } = c;
  await createTopicWhenReady(admin, "bal", PARTITIONS, 3);
  const wanted = ringPlacement([1, 2, 3, 4], "bal", PARTITIONS, 3);
  const moving = wanted.flatMap((w, p) => (w.split(",").includes("4") ? [p] : []));
  expect(moving.length).toBeGreaterThan(0);

  const producer = new Producer({ sentinels: [sentinel.address] });
  const offsets = new Map<string, { partition: number; offset: number }>();
  let sent = 0;
  const send = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const value = `v-${sent++}`;
      const partition = sent % PARTITIONS;
      const [a] = await producer.send("bal", [{ value, partition }]);
      offsets.set(value, { partition, offset: a!.offset });
    }
  };
  await send(200);
  await c.addBroker();
  // Writes go on while the sentinel moves replicas onto the new broker (and leaders hand over).
  let balanced = false;
  const describe = async () => (await admin.describeTopic("bal")).partitionInfo;
  const writer = (async () => {
    while (!balanced) await send(20);
  })();
  await until("the map on the ring", async () =>
    (await describe()).every((p) => replicaSet(p.replicas) === wanted[p.partition] && p.learners.length === 0) ? true : undefined,
    30_000,
  );
  balanced = true;
  await writer;
  await send(100);
  await producer.close();

  // Raft agrees with the map on every replica, and each holds the same bytes.
  for (let p = 0; p < PARTITIONS; p++) {
    const replicas = wanted[p]!.split(",").map(Number);
    const logs = replicas.map((b) => c.brokers[b - 1]!.broker.byName.get(`bal/${p}`)!);
    const end = Math.max(...[...offsets.values()].filter((o) => o.partition === p).map((o) => o.offset)) + 1;
    await until(`bal/${p} on every replica`, async () =>
      logs.every((x) => x.log.nextOffset >= end && replicaSet(x.node.conf.voters) === wanted[p]) ? true : undefined,
    );
    const bytes = logs.map((x) => readAll(x.log, end));
    for (const b of bytes.slice(1)) expect(Buffer.compare(b, bytes[0]!)).toBe(0);
  }
  for (const p of moving) expect(c.brokers[3]!.broker.byName.has(`bal/${p}`)).toBe(true);
  // Replicas that moved away are gone from the brokers that held them.
  for (let p = 0; p < PARTITIONS; p++) {
    for (const b of [1, 2, 3]) {
      if (wanted[p]!.split(",").includes(String(b))) continue;
      await until(`bal/${p} removed from broker ${b}`, async () => (c.brokers[b - 1]!.broker.byName.has(`bal/${p}`) ? undefined : true));
    }
  }

  const consumer = new Consumer({ sentinels: [sentinel.address], readFrom: "leader", maxWaitMs: 200 });
  await consumer.assignTopic("bal", "beginning");
  const got: ConsumedMessage[] = [];
  while (got.length < offsets.size) got.push(...(await consumer.poll()));
  await consumer.close();
  expect(got.length).toBe(offsets.size);
  for (const m of got) expect(offsets.get(m.value!.toString())).toEqual({ partition: m.partition, offset: m.offset });
}, 90_000);

function readAll(log: { read(offset: number, maxBytes: number): { records: Uint8Array; nextOffset: number } }, end: number): Buffer {
  const parts: Uint8Array[] = [];
  for (let at = 0; at < end; ) {
    const r = log.read(at, 1 << 20);
    parts.push(r.records.slice());
    at = r.nextOffset;
  }
  return Buffer.concat(parts);
}

test("a partition set aside on a broker whose replica moved away meanwhile is deleted, and the broker takes replicas again", async () => {
  const c = (cluster = await startInProcessCluster("goulette-set-aside-", { brokers: 4, sentinel: { balanceAfterMs: 0 } }));
  const { admin } = c;
  await createTopicWhenReady(admin, "sa", 1, 3);
  const placed = await withLeader(admin, "sa");
  const victim = placed.replicas.find((b) => b !== placed.leader)!;
  const free = [1, 2, 3, 4].find((b) => !placed.replicas.includes(b))!;
  await c.crashBroker(victim);
  // Down long enough: the sentinel moves its replica to the free broker.
  await until("the replica moved", async () => {
    const p = (await admin.describeTopic("sa")).partitionInfo[0]!;
    return p.replicas.includes(free) && !p.replicas.includes(victim) && p.learners.length === 0 ? true : undefined;
  });
  // Meanwhile its files became unreadable: on restart the partition is set aside, a storage fault.
  const dir = join(c.dir, `b${victim}`, "sa", "0");
  writeFileSync(join(dir, "partition.json"), '{"topic":"sa","partition":0,"gro');
  const back = await c.restartBroker(victim);
  expect(back.broker.storageError()).toMatch(/^sa\/0 set aside: /);
  // The map places it elsewhere: the broker lets it go, and reports no storage fault any more.
  await until("the set-aside files deleted", async () => (existsSync(dir) ? undefined : true));
  expect(back.broker.storageError()).toBe("");
  await until("the sentinel sees no storage fault", async () =>
    (await admin.clusterStatus()).brokers.find((b) => b.id === victim)!.storageError === "" ? true : undefined,
  );
  // And it is placeable again: a new topic of RF4 needs every broker.
  const t = await createTopicWhenReady(admin, "sa4", 1, 4);
  expect([...t.partitionInfo[0]!.replicas].sort()).toEqual([1, 2, 3, 4]);
}, 60_000);
