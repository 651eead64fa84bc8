// A producer keeps sending while the partition leader's disk fills: every send still succeeds, once, through
// the replica that takes over, and a consumer reads each value at the offset it was acknowledged with.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startSentinel, sentinelDefaults, type RunningSentinel } from "../../src/sentinel/index";
import { startBroker, brokerDefaults, type RunningBroker } from "../../src/broker/index";
import { silentLogger } from "../../src/log";
import { FaultyFileLayer } from "../../src/storage";
import { Admin, Consumer, ErrorCode, Producer, type ConsumedMessage } from "../../src/client/index";
import { codeOf } from "../../src/client/errors";

const dir = mkdtempSync(join(tmpdir(), "goulette-disk-full-"));
let sentinel: RunningSentinel;
const brokers: RunningBroker[] = [];
const disks: FaultyFileLayer[] = [];
let admin: Admin;

beforeAll(async () => {
  sentinel = await startSentinel({ ...sentinelDefaults, listen: "127.0.0.1:0", dataDir: join(dir, "s"), logLevel: "error" });
  for (let id = 1; id <= 3; id++) {
    const fs = new FaultyFileLayer();
    disks.push(fs);
    const opts = { ...brokerDefaults, id, listen: "127.0.0.1:0", sentinels: [sentinel.address], dataDir: join(dir, `b${id}`), logLevel: "error" as const, fs };
    brokers.push(await startBroker(opts, silentLogger));
  }
  admin = new Admin({ sentinels: [sentinel.address] });
});

afterAll(async () => {
  await admin?.close();
  for (const b of brokers) await b.stop();
  await sentinel?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function leaderOf(topic: string): Promise<number> {
  const until = Date.now() + 10_000;
  for (;;) {
    const leader = (await admin.describeTopic(topic)).partitionInfo[0]!.leader;
    if (leader !== 0) return leader;
    if (Date.now() > until) throw new Error(`${topic}/0 has no leader`);
    await Bun.sleep(20);
  }
}

test("sends in flight when the leader's disk fills are delivered once, through another replica", async () => {
  const until = Date.now() + 15_000;
  for (;;) {
    try {
      await admin.createTopic("df", { partitions: 1, replicas: 3 });
      break;
    } catch (e) {
      if (codeOf(e) !== ErrorCode.NOT_ENOUGH_BROKERS || Date.now() > until) throw e;
      await Bun.sleep(50);
    }
  }
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
