// Sentinel failover with real processes on loopback: kill -9 a broker and see its partitions back to three
// voters on live brokers; kill -9 the leader of three sentinels and see a new one serve. Every process a test
// starts is SIGKILLed in afterEach (and on any failure path) and its temporary directory removed.
import { afterEach, describe, expect, test } from "bun:test";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { Admin, type ClusterStatus, type TopicInfo } from "../../src/client/admin";
import { Consumer } from "../../src/client/consumer";
import { Producer } from "../../src/client/producer";
import { reservePorts } from "../ports";

const repoRoot = join(import.meta.dir, "..", "..");
const MAIN = join(repoRoot, "src", "main.ts");
const BOOT_TIMEOUT_MS = 20_000;
const FAILOVER_BOUND_MS = 20_000;
const POLL_MS = 100;

interface Proc {
  label: string;
  proc: Subprocess;
  logPath: string;
}

const started: Proc[] = [];
const dirs: string[] = [];
const admins: Admin[] = [];

afterEach(async () => {
  await stopEverything();
});

async function stopEverything(): Promise<void> {
  for (const a of admins.splice(0)) await a.close();
  const procs = started.splice(0);
  for (const p of procs) kill9(p);
  await Promise.all(procs.map((p) => p.proc.exited));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

function kill9(p: Proc): void {
  try {
    p.proc.kill("SIGKILL");
  } catch {
    // already gone
  }
}

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "goulette-sentinel-proc-"));
  dirs.push(d);
  return d;
}

function spawn(dir: string, label: string, args: string[]): Proc {
  const logPath = join(dir, `${label}.log`);
  const fd = openSync(logPath, "a");
  const proc = Bun.spawn([process.execPath, MAIN, ...args], { cwd: repoRoot, stdout: fd, stderr: fd, stdin: "ignore" });
  closeSync(fd);
  const p = { label, proc, logPath };
  started.push(p);
  return p;
}

function admin(sentinels: string[]): Admin {
  const a = new Admin({ sentinels, sentinelTimeoutMs: 1000 });
  admins.push(a);
  return a;
}

/** The tail of every log this test wrote, to make a failure readable. */
function logTails(): string {
  return started
    .map((p) => {
      let text = "";
      try {
        text = readFileSync(p.logPath, "utf8");
      } catch {
        text = "(no log)";
      }
      return `--- ${p.label} (exit ${p.proc.exitCode ?? p.proc.signalCode ?? "running"})\n${text.split("\n").slice(-15).join("\n")}`;
    })
    .join("\n");
}

/** Polls `probe` until it returns a value or the deadline passes; the last error or state names the failure. */
async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
      last = "condition not met";
    } catch (e) {
      last = e instanceof Error ? e.message : String(e);
    }
    await Bun.sleep(POLL_MS);
  }
  throw new Error(`${what} not reached within ${timeoutMs} ms (last: ${last})\n${logTails()}`);
}

function startBroker(dir: string, id: number, port: number, sentinels: string[]): Proc {
  return spawn(dir, `b${id}`, [
    "broker",
    "--id",
    String(id),
    "--listen",
    `127.0.0.1:${port}`,
    "--sentinel",
    sentinels.join(","),
    "--data-dir",
    join(dir, `b${id}`),
    "--fsync",
    "never",
    "--log-level",
    "warn",
  ]);
}

/**
 * Creates a topic, or finds it created: a request that timed out may still have committed, and its retry then
 * meets TOPIC_EXISTS. Either way the topic was only ever asked for through `a`.
 */
async function createOrFind(a: Admin, name: string, partitions: number): Promise<TopicInfo> {
  try {
    return await a.createTopic(name, { partitions, replicas: 3 });
  } catch (e) {
    const found = await a.describeTopic(name).catch(() => undefined);
    if (found !== undefined) return found;
    throw e;
  }
}

function healthyIds(s: ClusterStatus): number[] {
  return s.brokers.filter((b) => b.health === "healthy").map((b) => b.id);
}

/** Every partition of `topic` has exactly three voters, no learners, all on `live`, led by one of them. */
function fullyReplicatedOn(s: ClusterStatus, topic: string, partitions: number, live: number[]): boolean {
  const t = s.topics.find((x) => x.name === topic);
  if (t === undefined || t.partitionInfo.length !== partitions) return false;
  return t.partitionInfo.every(
    (p) =>
      p.replicas.length === 3 &&
      p.learners.length === 0 &&
      p.replicas.every((r) => live.includes(r)) &&
      p.leader !== 0 &&
      p.replicas.includes(p.leader),
  );
}

/** Three sentinels replicating the map and three brokers; resolves once a map leader sees them healthy. */
async function threeSentinelsThreeBrokers(dir: string): Promise<{ peers: string[]; sentinels: Proc[]; ready: ClusterStatus }> {
  const reserved = reservePorts(6); // three sentinels, three brokers (see test/ports.ts)
  reserved.release();
  const peers = reserved.ports.slice(0, 3).map((port) => `127.0.0.1:${port}`);
  const sentinels = peers.map((addr, i) =>
    spawn(dir, `s${i + 1}`, [
      "sentinel",
      "--listen",
      addr,
      "--peers",
      peers.join(","),
      "--id",
      String(i + 1),
      "--data-dir",
      join(dir, `s${i + 1}`),
      "--fsync",
      "never",
      "--log-level",
      "warn",
    ]),
  );
  for (let id = 1; id <= 3; id++) startBroker(dir, id, reserved.ports[2 + id]!, peers);
  const a = admin(peers);
  const ready = await until("a sentinel leader and three healthy brokers", BOOT_TIMEOUT_MS, async () => {
    const s = await a.clusterStatus();
    return healthyIds(s).length === 3 && s.sentinels.some((x) => x.leader) ? s : undefined;
  });
  return { peers, sentinels, ready };
}

/** kill -9 the sentinel `status` names as the map leader; returns the other two addresses. */
async function killMapLeader(peers: string[], sentinels: Proc[], status: ClusterStatus): Promise<string[]> {
  const leader = status.sentinels.find((x) => x.leader)!;
  const index = peers.indexOf(leader.address);
  expect(index).toBeGreaterThanOrEqual(0);
  kill9(sentinels[index]!);
  await sentinels[index]!.proc.exited;
  return peers.filter((_, i) => i !== index);
}

describe("sentinel with real processes", () => {
  test("kill -9 a replica's broker: its partitions are back to three voters on live brokers", async () => {
    const dir = tempDir();
    const reserved = reservePorts(5); // the sentinel, four brokers (see test/ports.ts)
    reserved.release();
    const sentinel = `127.0.0.1:${reserved.ports[0]}`;
    try {
      spawn(dir, "sentinel", ["sentinel", "--listen", sentinel, "--data-dir", join(dir, "sentinel"), "--fsync", "never", "--log-level", "warn"]);
      const brokers = new Map<number, Proc>();
      for (let id = 1; id <= 4; id++) brokers.set(id, startBroker(dir, id, reserved.ports[id]!, [sentinel]));
      const a = admin([sentinel]);
      await until("four healthy brokers", BOOT_TIMEOUT_MS, async () => {
        const s = await a.clusterStatus();
        return healthyIds(s).length === 4 ? s : undefined;
      });

      const PARTITIONS = 2;
      await until("topic created", BOOT_TIMEOUT_MS, async () => createOrFind(a, "orders", PARTITIONS));
      const all = [1, 2, 3, 4];
      const before = await until("RF3 with leaders before the kill", BOOT_TIMEOUT_MS, async () => {
        const s = await a.clusterStatus();
        return fullyReplicatedOn(s, "orders", PARTITIONS, all) ? s : undefined;
      });

      // The victim leads partition 0: both the leader election and the replacement are exercised.
      const victim = before.topics.find((t) => t.name === "orders")!.partitionInfo[0]!.leader;
      kill9(brokers.get(victim)!);
      await brokers.get(victim)!.proc.exited;
      const live = all.filter((id) => id !== victim);

      const killedAt = Date.now();
      const after = await until("RF3 on live brokers after the kill", FAILOVER_BOUND_MS, async () => {
        const s = await a.clusterStatus();
        return fullyReplicatedOn(s, "orders", PARTITIONS, live) ? s : undefined;
      });
      const restoredMs = Date.now() - killedAt;
      const victimHealth = after.brokers.find((b) => b.id === victim)?.health;
      expect(victimHealth).toBe("down");
      for (const p of after.topics.find((t) => t.name === "orders")!.partitionInfo) {
        expect(p.replicas).not.toContain(victim);
        expect(p.replicas).toHaveLength(3);
      }
      console.log(JSON.stringify({ measure: "rf3_restored_after_kill9_ms", value: restoredMs }));
    } finally {
      await stopEverything();
    }
  }, 60_000);

  test("kill -9 the leader of three sentinels: a new leader serves topic creation and status", async () => {
    const dir = tempDir();
    try {
      const { peers, sentinels, ready } = await threeSentinelsThreeBrokers(dir);
      const a = admin(peers);
      await until("topic created before the kill", BOOT_TIMEOUT_MS, async () => createOrFind(a, "before", 1));

      const survivors = await killMapLeader(peers, sentinels, ready);

      const b = admin(survivors);
      const created = await until("topic created through the surviving sentinels", FAILOVER_BOUND_MS, async () => createOrFind(b, "after", 1));
      expect(created.name).toBe("after");
      const status = await until("status from a new sentinel leader", FAILOVER_BOUND_MS, async () => {
        const s = await b.clusterStatus();
        const newLeader = s.sentinels.find((x) => x.leader);
        return newLeader !== undefined && survivors.includes(newLeader.address) ? s : undefined;
      });
      // The map survived the leader: the topic created before the kill is still there.
      expect(status.topics.map((t) => t.name).sort()).toEqual(["after", "before"]);
      expect(status.topics.find((t) => t.name === "after")!.replicationFactor).toBe(3);
    } finally {
      await stopEverything();
    }
  }, 60_000);

  test("kill -9 the map leader under a consumer group: the member rejoins and reads on from its commit", async () => {
    // Group membership lives in the leading sentinel's memory (as a Kafka coordinator's does until members
    // rejoin); committed offsets live in the partitions. A new map leader does not know the member: it
    // rejoins, gets its partitions again and starts at the committed offsets.
    const dir = tempDir();
    const clients: { close(): Promise<void> }[] = [];
    try {
      const { peers, sentinels, ready } = await threeSentinelsThreeBrokers(dir);
      const a = admin(peers);
      await until("topic created", BOOT_TIMEOUT_MS, async () => createOrFind(a, "events", 2));
      const producer = new Producer({ sentinels: peers, sentinelTimeoutMs: 1000 });
      clients.push(producer);
      const sendRange = (from: number, to: number) =>
        producer.send("events", Array.from({ length: to - from }, (_, k) => ({ value: `e${from + k}`, partition: (from + k) % 2 })));
      await sendRange(0, 40); // the producer retries within its delivery timeout; a retry here could duplicate

      const consumer = new Consumer({ sentinels: peers, sentinelTimeoutMs: 1000, groupId: "readers", defaultFrom: "beginning", maxWaitMs: 100, autoCommit: false });
      clients.push(consumer);
      await consumer.subscribe(["events"]);
      const seen: string[] = [];
      const readUntil = async (what: string, n: number) =>
        until(what, FAILOVER_BOUND_MS, async () => {
          for (const m of await consumer.poll(100)) seen.push(new TextDecoder().decode(m.value));
          return seen.length >= n ? true : undefined;
        });
      await readUntil("the first 40 read", 40);
      await consumer.commit();
      expect(seen.sort()).toEqual(Array.from({ length: 40 }, (_, i) => `e${i}`).sort());

      const before = consumer.groupMetadata()!;
      expect(before.memberId).not.toBe("");
      await killMapLeader(peers, sentinels, ready);
      await sendRange(40, 60);
      await readUntil("the next 20 read after the failover", 60);
      // It joined the new map leader's group: a new member (the old leader's membership died with it).
      await until("a member of the new leader's group", FAILOVER_BOUND_MS, async () => {
        await consumer.poll(100).then((ms) => ms.forEach((m) => seen.push(new TextDecoder().decode(m.value))));
        const now = consumer.groupMetadata()!;
        return now.memberId !== "" && now.memberId !== before.memberId && consumer.assignment().length === 2 ? now : undefined;
      });
      // Every message exactly once: nothing committed came back after the rejoin, nothing was skipped.
      expect(seen.sort()).toEqual(Array.from({ length: 60 }, (_, i) => `e${i}`).sort());
      expect(consumer.assignment().map((x) => x.partition).sort()).toEqual([0, 1]);
    } finally {
      for (const c of clients) await c.close().catch(() => {});
      await stopEverything();
    }
  }, 90_000);
});
