// A sentinel whose map store lost records must not take the brokers' data with it: one flipped byte in a
// single sentinel's map WAL used to make it remove every topic it no longer knew from every broker. Now
// the data stays, and the topic is adopted back from what the brokers report.
import { afterAll, expect, test } from "bun:test";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Consumer, Producer } from "../../src/client/index";
import { createTopicWhenReady, startInProcessCluster, type InProcessCluster } from "../in-process-cluster";

let cluster: InProcessCluster | undefined;

afterAll(async () => {
  await cluster?.stop();
});

test("a sentinel restarted on a map WAL with a corrupt record keeps the brokers' partitions and adopts the lost topic back", async () => {
  const c = (cluster = await startInProcessCluster("goulette-damaged-map-", { sentinel: { keepAliveMs: 50 } }));
  const { brokers } = c;
  const address = c.sentinel.address;
  const config = { "retention.ms": "86400000", "segment.bytes": "1048576" };
  await createTopicWhenReady(c.admin, "orders", 1, 3, config);
  const producer = new Producer({ sentinels: [address] });
  await producer.send("orders", Array.from({ length: 50 }, (_, i) => ({ value: `m${i}` })));
  await producer.close();

  // Damage the record that created the topic: recovery cuts the map's log there (records lost mid-log).
  let at = -1;
  await c.restartSentinel(() => {
    const walDir = join(c.dir, "s", "map-wal");
    const file = join(walDir, readdirSync(walDir).filter((f) => f.endsWith(".wal") && !f.startsWith("spare")).sort()[0]!);
    const bytes = readFileSync(file);
    at = bytes.indexOf("orders");
    if (at > 0) bytes[at] = bytes[at]! ^ 0xff;
    writeFileSync(file, bytes);
  });
  expect(at).toBeGreaterThan(0);
  const admin = c.admin;
  // The restarted map has no topic "orders", but every broker reports holding it: it is left alone (it
  // used to be removed from all three at once), then adopted back once the brokers have reported a while.
  const adopted = Date.now() + 15_000;
  while (!(await admin.listTopics()).some((t) => t.name === "orders") && Date.now() < adopted) await Bun.sleep(20);
  const t = await admin.describeTopic("orders");
  expect(t.partitionInfo.map((p) => [p.partition, [...p.replicas].sort()])).toEqual([[0, [1, 2, 3]]]);
  // With the config the replicas apply, so a replica added later is made with it too, not the defaults.
  expect([t.config, t.configUnknown]).toEqual([config, false]);
  const held = () => brokers.map((b) => b.broker.byName.get("orders/0")?.log.nextOffset);
  const all = Date.now() + 10_000;
  while (held().some((n) => n !== 50) && Date.now() < all) await Bun.sleep(20); // followers apply a moment later
  expect(held()).toEqual([50, 50, 50]);
  expect((await admin.clusterStatus()).warnings).toEqual([]);

  // Served again: every acknowledged message reads back, and the topic takes new ones.
  const after = new Producer({ sentinels: [address] });
  const [ack] = await after.send("orders", [{ value: "after" }]);
  await after.close();
  expect(ack!.offset).toBe(50);
  const consumer = new Consumer({ sentinels: [address], maxWaitMs: 200 });
  await consumer.assignTopic("orders", "beginning");
  const got: string[] = [];
  const readUntil = Date.now() + 10_000;
  while (got.length < 51 && Date.now() < readUntil) for (const m of await consumer.poll(200)) got.push(new TextDecoder().decode(m.value));
  await consumer.close();
  expect(got).toEqual([...Array.from({ length: 50 }, (_, i) => `m${i}`), "after"]);
  // New topics never land on a group brokers hold.
  const fresh = await admin.createTopic("fresh", { partitions: 1, replicas: 3 });
  expect(fresh.partitionInfo.length).toBe(1);
  for (const b of brokers) expect(b.broker.byName.get("fresh/0")?.id.group).toBe(2);
}, 60_000);
