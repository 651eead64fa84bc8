// A sentinel whose map store lost records must not take the brokers' data with it: one flipped byte in a
// single sentinel's map WAL used to make it remove every topic it no longer knew from every broker.
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startSentinel, sentinelDefaults, type RunningSentinel } from "../../src/sentinel/index";
import { startBroker, brokerDefaults, type RunningBroker } from "../../src/broker/index";
import { silentLogger } from "../../src/log";
import { Admin, ErrorCode, Producer } from "../../src/client/index";
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

test("a sentinel restarted on a map WAL with a corrupt record leaves the brokers' partitions alone and says so", async () => {
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
  // Once every broker has reported orders/0 to the restarted sentinel (which is when it used to remove
  // them), the status warns about each; a few more beats later every broker still holds all 50 messages.
  const warned = Date.now() + 15_000;
  let warnings: string[] = [];
  while (Date.now() < warned) {
    warnings = (await admin.clusterStatus()).warnings;
    if (warnings.length === 3) break;
    await Bun.sleep(20);
  }
  expect(warnings.map((w) => w.slice(0, w.indexOf(","))).sort()).toEqual([1, 2, 3].map((b) => `broker ${b} holds orders/0 (group 1)`));
  expect((await admin.listTopics()).map((t) => t.name)).toEqual([]);
  await Bun.sleep(200); // four keep-alive intervals
  for (const b of brokers) expect(b.broker.byName.get("orders/0")?.log.nextOffset).toBe(50);
  // The name and the group stay taken: no new topic can land on the old data.
  await expect(admin.createTopic("orders", { partitions: 1, replicas: 3 })).rejects.toThrow(/still hold data of a topic "orders"/);
  const fresh = await admin.createTopic("fresh", { partitions: 1, replicas: 3 });
  expect(fresh.partitionInfo.length).toBe(1);
  for (const b of brokers) expect(b.broker.byName.get("fresh/0")?.id.group).toBe(2);
}, 60_000);
