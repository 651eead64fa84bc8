// A sentinel whose map store lost records must not take the brokers' data with it: one flipped byte in a
// single sentinel's map WAL used to make it remove every topic it no longer knew from every broker. Now
// the data stays, and the topic is adopted back from what the brokers report.
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startSentinel, sentinelDefaults, type RunningSentinel } from "../../src/sentinel/index";
import { startBroker, brokerDefaults, type RunningBroker } from "../../src/broker/index";
import { silentLogger } from "../../src/log";
import { Admin, Consumer, ErrorCode, Producer } from "../../src/client/index";
import { codeOf } from "../../src/client/errors";

const dir = mkdtempSync(join(tmpdir(), "goulette-damaged-map-"));
let sentinel: RunningSentinel | undefined;
const brokers: RunningBroker[] = [];
let admin: Admin | undefined;

afterAll(async () => {
  await admin?.close();
  for (const b of brokers) await b.stop();
  await sentinel?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const sentinelOpts = (listen: string) => ({ ...sentinelDefaults, listen, dataDir: join(dir, "s"), keepAliveMs: 50, logLevel: "error" as const });

test("a sentinel restarted on a map WAL with a corrupt record keeps the brokers' partitions and adopts the lost topic back", async () => {
  sentinel = await startSentinel(sentinelOpts("127.0.0.1:0"));
  const address = sentinel.address;
  for (let id = 1; id <= 3; id++) {
    const opts = { ...brokerDefaults, id, listen: "127.0.0.1:0", sentinels: [address], dataDir: join(dir, `b${id}`), logLevel: "error" as const };
    brokers.push(await startBroker(opts, silentLogger));
  }
  admin = new Admin({ sentinels: [address] });
  const until = Date.now() + 15_000;
  for (;;) {
    try {
      await admin.createTopic("orders", { partitions: 1, replicas: 3 });
      break;
    } catch (e) {
      if (codeOf(e) !== ErrorCode.NOT_ENOUGH_BROKERS || Date.now() > until) throw e;
      await Bun.sleep(20);
    }
  }
  const producer = new Producer({ sentinels: [address] });
  await producer.send("orders", Array.from({ length: 50 }, (_, i) => ({ value: `m${i}` })));
  await producer.close();
  await admin.close();

  // Damage the record that created the topic: recovery cuts the map's log there (records lost mid-log).
  await sentinel.stop();
  sentinel = undefined;
  const walDir = join(dir, "s", "map-wal");
  const file = join(walDir, readdirSync(walDir).filter((f) => f.endsWith(".wal") && !f.startsWith("spare")).sort()[0]!);
  const bytes = readFileSync(file);
  const at = bytes.indexOf("orders");
  expect(at).toBeGreaterThan(0);
  bytes[at] = bytes[at]! ^ 0xff;
  writeFileSync(file, bytes);

  sentinel = await startSentinel(sentinelOpts(address));
  admin = new Admin({ sentinels: [address] });
  // The restarted map has no topic "orders", but every broker reports holding it: it is left alone (it
  // used to be removed from all three at once), then adopted back once the brokers have reported a while.
  const adopted = Date.now() + 15_000;
  while (!(await admin.listTopics()).some((t) => t.name === "orders") && Date.now() < adopted) await Bun.sleep(20);
  const t = await admin.describeTopic("orders");
  expect(t.partitionInfo.map((p) => [p.partition, [...p.replicas].sort()])).toEqual([[0, [1, 2, 3]]]);
  for (const b of brokers) expect(b.broker.byName.get("orders/0")?.log.nextOffset).toBe(50);
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
