// A follower whose partition log cannot be written leaves its Raft group, and a broker whose WAL fails
// leaves all of them, while the broker keeps running. With a fourth broker free, the sentinel replaces
// such a replica as it replaces a dead broker's: the partition is back to three voters that can all
// store, without waiting for anyone to restart the faulty broker.
import { afterEach, expect, test } from "bun:test";
import { FaultyFileLayer } from "../../src/storage";
import { Consumer, Producer, type ConsumedMessage } from "../../src/client/index";
import { createTopicWhenReady, startInProcessCluster, until, withLeader, type InProcessCluster } from "../in-process-cluster";

let disks: FaultyFileLayer[] = [];
let cluster: InProcessCluster | undefined;

async function fourBrokers(): Promise<InProcessCluster> {
  disks = [new FaultyFileLayer(), new FaultyFileLayer(), new FaultyFileLayer(), new FaultyFileLayer()];
  cluster = await startInProcessCluster("goulette-left-replica-", { disks, brokers: 4 });
  return cluster;
}

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

/**
 * Topic "lr" (one partition, RF3) with 50 records; then `fail(follower)` breaks one follower's disk and 50
 * more are sent; the sentinel must replace that follower's replica on the fourth broker, which ends with
 * all 150 records at their acknowledged offsets.
 */
async function replacedAfter(fail: (disk: FaultyFileLayer) => void): Promise<void> {
  const c = await fourBrokers();
  const { admin, sentinel } = c;
  await createTopicWhenReady(admin, "lr", 1, 3);
  const placed = await withLeader(admin, "lr");
  const faulty = placed.replicas.find((b) => b !== placed.leader)!;
  const free = [1, 2, 3, 4].find((b) => !placed.replicas.includes(b))!;

  const producer = new Producer({ sentinels: [sentinel.address] });
  const offsets = new Map<string, number>();
  const send = async (prefix: string, n: number) => {
    for (let i = 0; i < n; i++) {
      const [a] = await producer.send("lr", [{ value: `${prefix}-${i}` }]);
      offsets.set(`${prefix}-${i}`, a!.offset);
    }
  };
  await send("before", 50);
  fail(disks[faulty - 1]!);
  await send("during", 50);

  // The map names the free broker instead of the faulty one, and Raft has it as a voter.
  const replaced = await until("the replacement", async () => {
    const p = (await admin.describeTopic("lr")).partitionInfo[0]!;
    return p.replicas.length === 3 && !p.replicas.includes(faulty) && p.replicas.includes(free) && p.learners.length === 0 ? p : undefined;
  });
  expect(replaced.replicas.sort()).toEqual([...placed.replicas.filter((b) => b !== faulty), free].sort());
  const onFree = c.brokers[free - 1]!.broker.byName.get("lr/0")!;
  await until("the free broker's voter status", async () => (onFree.node.conf.voters.includes(free) && !onFree.node.conf.voters.includes(faulty) ? true : undefined));
  await send("after", 50);
  await producer.close();

  // The new replica holds every acknowledged record at its offset.
  await until("the new replica caught up", async () => (onFree.log.nextOffset >= 150 ? true : undefined));
  const consumer = new Consumer({ sentinels: [sentinel.address], readFrom: "leader", maxWaitMs: 200 });
  await consumer.assignTopic("lr", "beginning");
  const got: ConsumedMessage[] = [];
  while (got.length < 150) got.push(...(await consumer.poll()));
  await consumer.close();
  for (const m of got) expect(offsets.get(m.value!.toString())).toBe(m.offset);
  expect(got.length).toBe(150);
}

test("a replica that left its group after its partition log failed is replaced on a free broker", async () => {
  await replacedAfter((disk) => {
    disk.pathContains = "/lr/0/";
    disk.writeBudgetBytes = 0;
  });
  // The faulty broker was told to let its replica go: nothing it holds fails any more.
  const { admin } = cluster!;
  await until("the faulty broker's storage error cleared", async () =>
    (await admin.clusterStatus()).brokers.every((b) => b.storageError === "") ? true : undefined,
  );
}, 60_000);

test("the replicas of a broker whose WAL failed (it stays up) are replaced on a free broker", async () => {
  await replacedAfter((disk) => {
    disk.pathContains = "/.wal/";
    disk.writeBudgetBytes = 0;
  });
  // Its WAL stays failed until a restart, which operators see; it took no replacement meanwhile.
  const { admin } = cluster!;
  expect((await admin.clusterStatus()).brokers.filter((b) => b.storageError.startsWith("wal: ")).length).toBe(1);
}, 60_000);
