// A real sentinel and three (or `brokers`) real brokers in this process, on loopback ports the OS picks, over a temp
// dir: what client-level tests run against. `disks` (optional) gives broker i its file layer (faults).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startSentinel, sentinelDefaults, type RunningSentinel } from "../src/sentinel/index";
import type { SentinelOptions } from "../src/sentinel/options";
import { startBroker, brokerDefaults, type RunningBroker } from "../src/broker/index";
import { silentLogger } from "../src/log";
import { Admin, ErrorCode, type PartitionInfo, type TopicInfo } from "../src/client/index";
import { codeOf } from "../src/client/errors";
import type { FileLayer } from "../src/storage";

export interface InProcessCluster {
  dir: string;
  sentinel: RunningSentinel;
  brokers: RunningBroker[];
  admin: Admin;
  /** Starts one more broker (the next id) against the same sentinel. */
  addBroker(): Promise<RunningBroker>;
  /** Stops broker `id` as a crash would (no hand-over, no goodbye); `restartBroker` brings it back. */
  crashBroker(id: number): Promise<void>;
  /** Starts broker `id` again on its address and data dir. */
  restartBroker(id: number): Promise<RunningBroker>;
  /** Stops the sentinel, runs `whileStopped` (to damage its files), starts it on the same address and dir. */
  restartSentinel(whileStopped?: () => void): Promise<void>;
  stop(): Promise<void>;
}

export async function startInProcessCluster(
  prefix: string,
  opts: { disks?: FileLayer[]; sentinel?: Partial<SentinelOptions>; brokers?: number } = {},
): Promise<InProcessCluster> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const sentinelOpts = (listen: string): SentinelOptions => ({ ...sentinelDefaults, listen, dataDir: join(dir, "s"), logLevel: "error", ...opts.sentinel });
  const c: InProcessCluster = {
    dir,
    sentinel: await startSentinel(sentinelOpts("127.0.0.1:0")),
    brokers: [],
    admin: undefined as unknown as Admin,
    async addBroker() {
      const started = await start(c.brokers.length + 1, "127.0.0.1:0");
      c.brokers.push(started);
      return started;
    },
    async crashBroker(id) {
      await c.brokers[id - 1]!.broker.crash();
    },
    async restartBroker(id) {
      const started = await start(id, c.brokers[id - 1]!.address);
      c.brokers[id - 1] = started;
      return started;
    },
    async restartSentinel(whileStopped) {
      const address = c.sentinel.address;
      await c.sentinel.stop();
      whileStopped?.();
      c.sentinel = await startSentinel(sentinelOpts(address));
    },
    async stop() {
      await c.admin.close();
      for (const b of c.brokers) await b.stop();
      await c.sentinel.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  const start = (id: number, listen: string) => {
    const fs = opts.disks?.[id - 1];
    const b = { ...brokerDefaults, id, listen, sentinels: [c.sentinel.address], dataDir: join(dir, `b${id}`), logLevel: "error" as const };
    return startBroker(fs ? { ...b, fs } : b, silentLogger);
  };
  for (let id = 1; id <= (opts.brokers ?? 3); id++) await c.addBroker();
  c.admin = new Admin({ sentinels: [c.sentinel.address] });
  return c;
}

/** Creates a topic, retrying while the sentinel refuses for want of registered brokers (just started). */
export async function createTopicWhenReady(
  admin: Admin,
  name: string,
  partitions: number,
  replicas: number,
  config?: Record<string, string>,
): Promise<TopicInfo> {
  const until = Date.now() + 15_000;
  for (;;) {
    try {
      return await admin.createTopic(name, { partitions, replicas, config });
    } catch (e) {
      if (codeOf(e) !== ErrorCode.NOT_ENOUGH_BROKERS || Date.now() > until) throw e;
      await Bun.sleep(50);
    }
  }
}

/** Polls `get` every 50 ms until it gives a value; fails naming `what` after `timeoutMs`. */
export async function until<T>(what: string, get: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await get();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await Bun.sleep(50);
  }
}

/** Partition 0 of `topic` once it has a leader: its replicas, and which of them leads. */
export function withLeader(admin: Admin, topic: string): Promise<PartitionInfo> {
  return until(`a leader of ${topic}/0`, async () => {
    const p = (await admin.describeTopic(topic)).partitionInfo[0]!;
    return p.leader !== 0 ? p : undefined;
  });
}
