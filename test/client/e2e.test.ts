// The client library against a real sentinel and three real brokers, started in-process on loopback.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import type { RunningSentinel } from "../../src/sentinel/index";
import type { RunningBroker } from "../../src/broker/index";
import { Admin, Consumer, Producer, type ConsumedMessage } from "../../src/client/index";
import { memorySink, setIO } from "../../src/cli/output";
import { run as consumeRun } from "../../src/cli/commands/consume";
import { createTopicWhenReady, startInProcessCluster, type InProcessCluster } from "../in-process-cluster";

let cluster: InProcessCluster;
let sentinel: RunningSentinel;
let brokers: RunningBroker[];
let admin: Admin;
const dec = new TextDecoder();

async function createTopic(name: string, partitions: number, replicas: number): Promise<void> {
  await createTopicWhenReady(admin, name, partitions, replicas);
}

async function readAll(c: Consumer, n: number, withinMs = 10_000): Promise<ConsumedMessage[]> {
  const got: ConsumedMessage[] = [];
  const until = Date.now() + withinMs;
  while (got.length < n && Date.now() < until) got.push(...(await c.poll(200)));
  return got;
}

beforeAll(async () => {
  cluster = await startInProcessCluster("goulette-client-e2e-");
  ({ sentinel, brokers, admin } = cluster);
});

afterAll(async () => {
  await cluster?.stop();
});

describe("against real brokers", () => {
  test("produce, then read every message back from the leader and from a follower at its acknowledged offset", async () => {
    await createTopic("e2e-rep", 2, 3);
    const producer = new Producer({ sentinels: [sentinel.address] });
    const values = Array.from({ length: 200 }, (_, i) => `v-${i}`);
    const acks = (await Promise.all(values.map((value, i) => producer.send("e2e-rep", [{ value, key: i % 5 === 0 ? "k" : undefined }])))).flat();
    await producer.close();
    const want = new Map(acks.map((a, i) => [values[i]!, `${a.partition}/${a.offset}`]));
    expect(new Set(want.values()).size).toBe(200);

    for (const readFrom of ["leader", "follower"] as const) {
      const c = new Consumer({ sentinels: [sentinel.address], readFrom, maxWaitMs: 200 });
      await c.assignTopic("e2e-rep", "beginning");
      const got = await readAll(c, 200);
      await c.close();
      expect(got.length).toBe(200);
      for (const m of got) expect(`${m.partition}/${m.offset}`).toBe(want.get(dec.decode(m.value))!);
      const keyed = got.filter((m) => m.key !== undefined);
      expect(keyed.length).toBe(40);
      expect(new Set(keyed.map((m) => m.partition)).size).toBe(1);
    }
  }, 20_000);

  test("admin: list, describe and cluster status show the topic and its leaders", async () => {
    await createTopic("e2e-admin", 1, 3);
    expect((await admin.listTopics()).map((t) => t.name)).toContain("e2e-admin");
    const t = await admin.describeTopic("e2e-admin");
    expect(t.partitions).toBe(1);
    const status = await admin.clusterStatus();
    expect(status.brokers.map((b) => [b.id, b.health])).toEqual([[1, "healthy"], [2, "healthy"], [3, "healthy"]]);
    await expect(admin.createTopic("e2e-admin", { partitions: 1, replicas: 3 })).rejects.toThrow(/exists/);
  });

  test("a consumer group shares partitions, commits, and a new member resumes from the commit", async () => {
    await createTopic("e2e-group", 2, 3);
    const producer = new Producer({ sentinels: [sentinel.address] });
    await producer.send("e2e-group", Array.from({ length: 20 }, (_, i) => ({ value: `g-${i}`, partition: i % 2 })));

    const a = new Consumer({ sentinels: [sentinel.address], groupId: "g1", defaultFrom: "beginning", maxWaitMs: 200, autoCommit: false });
    await a.subscribe(["e2e-group"]);
    expect(a.assignment().length).toBe(2);
    const first = await readAll(a, 20);
    expect(first.length).toBe(20);
    await a.commit();
    expect(await a.committedOffset("e2e-group", 0)).toBe(10);

    const b = new Consumer({ sentinels: [sentinel.address], groupId: "g1", defaultFrom: "beginning", maxWaitMs: 200, autoCommit: false });
    await b.subscribe(["e2e-group"]);
    // After the rebalance each member holds one partition.
    const until = Date.now() + 10_000;
    while ((a.assignment().length !== 1 || b.assignment().length !== 1) && Date.now() < until) await a.poll(100);
    expect([...a.assignment(), ...b.assignment()].map((x) => x.partition).sort()).toEqual([0, 1]);

    await producer.send("e2e-group", [{ value: "after-0", partition: 0 }, { value: "after-1", partition: 1 }]);
    const [fromA, fromB] = await Promise.all([readAll(a, 1, 5000), readAll(b, 1, 5000)]);
    // Nothing read before the commit comes again: each member starts at the group's offset.
    expect([...fromA, ...fromB].map((m) => dec.decode(m.value)).sort()).toEqual(["after-0", "after-1"]);
    await a.close();
    await b.close();
    await producer.close();
  }, 20_000);

  test("CLI: produce lines from stdin with a key, acks in input order; consume prints them as JSON; status names the leader", async () => {
    await createTopic("e2e-cli", 3, 3);
    const cli = (args: string[], stdin?: string) =>
      Bun.spawn([process.execPath, join(import.meta.dir, "../../src/main.ts"), ...args, "--sentinel", sentinel.address], {
        stdin: stdin === undefined ? "ignore" : new TextEncoder().encode(stdin),
        stdout: "pipe",
        stderr: "pipe",
        env: { ...process.env, GOULETTE_SENTINEL: "" },
      });
    const lines = Array.from({ length: 50 }, (_, i) => `line ${i}`);
    const prod = cli(["produce", "e2e-cli", "--key", "user-7", "--format", "json"], lines.join("\n") + "\n");
    const [prodOut, prodErr, prodCode] = await Promise.all([new Response(prod.stdout).text(), new Response(prod.stderr).text(), prod.exited]);
    expect(prodErr).toBe("");
    expect(prodCode).toBe(0);
    const acks = prodOut.trim().split("\n").map((l) => JSON.parse(l));
    expect(acks.map((a) => a.value)).toEqual(lines);
    const partition = acks[0].partition;
    expect(acks.every((a) => a.partition === partition)).toBe(true);
    expect(acks.map((a) => a.offset)).toEqual(lines.map((_, i) => acks[0].offset + i));

    const cons = cli(["consume", "e2e-cli", "--from-beginning", "--timeout-ms", "3000", "--format", "json"]);
    const [consOut, consCode] = await Promise.all([new Response(cons.stdout).text(), cons.exited]);
    expect(consCode).toBe(0);
    const got = consOut.trim().split("\n").map((l) => JSON.parse(l));
    expect(got.map((m) => [m.partition, m.offset, m.key, m.value])).toEqual(acks.map((a) => [partition, a.offset, "user-7", a.value]));
    expect(Object.keys(got[0]).sort()).toEqual(["key", "offset", "partition", "timestamp", "value"]);

    const st = cli(["cluster", "status", "--format", "json"]);
    const [stOut, stCode] = await Promise.all([new Response(st.stdout).text(), st.exited]);
    expect(stCode).toBe(0);
    const rows = stOut.trim().split("\n").map((l) => JSON.parse(l));
    const row = rows.find((r) => r.type === "partition" && r.topic === "e2e-cli" && r.partition === partition);
    expect([1, 2, 3]).toContain(row.leader);
  }, 30_000);

  test("CLI topic create --retention-bytes: every replica drops its oldest segments; consumers start at the new log start", async () => {
    const cli = (args: string[]) =>
      Bun.spawn([process.execPath, join(import.meta.dir, "../../src/main.ts"), ...args, "--sentinel", sentinel.address], {
        stdout: "pipe",
        stderr: "pipe",
        env: { ...process.env, GOULETTE_SENTINEL: "" },
      });
    const bad = cli(["topic", "create", "e2e-ret", "--retention-ms", "soon"]);
    expect(await bad.exited).toBe(2);
    const made = cli(["topic", "create", "e2e-ret", "--partitions", "1", "--replicas", "3", "--segment-bytes", "4096", "--retention-bytes", "8192"]);
    expect([await made.exited, await new Response(made.stderr).text()]).toEqual([0, ""]);
    expect((await admin.describeTopic("e2e-ret")).config).toEqual({ "segment.bytes": "4096", "retention.bytes": "8192" });

    const producer = new Producer({ sentinels: [sentinel.address] });
    const value = (i: number) => `${i}:`.padEnd(500, "x");
    for (let i = 0; i < 60; i++) await producer.send("e2e-ret", [{ value: value(i) }]); // 60 batches, ~33 KB
    await producer.close();
    const logs = () => brokers.map((b) => b.broker.byName.get("e2e-ret/0")!.log);
    const until = Date.now() + 10_000;
    // Every replica has all 60 (a follower applies the last one a moment after the leader acknowledged it)
    // and has dropped its oldest segments.
    const trimmed = (l: ReturnType<typeof logs>[number]) => l.nextOffset === 60 && l.logStartOffset > 0 && l.sizeBytes <= 8192 + 4096;
    while (!logs().every(trimmed) && Date.now() < until) await Bun.sleep(50);
    for (const l of logs()) {
      expect(l.logStartOffset).toBeGreaterThan(0);
      expect(l.sizeBytes).toBeLessThanOrEqual(8192 + 4096);
      expect(l.nextOffset).toBe(60);
    }
    const c = new Consumer({ sentinels: [sentinel.address], maxWaitMs: 200 });
    await c.assignTopic("e2e-ret", "beginning");
    const got = await readAll(c, 60, 3_000);
    await c.close();
    const leaderStart = logs().map((l) => l.logStartOffset);
    expect(leaderStart).toContain(got[0]!.offset);
    expect(got.map((m) => dec.decode(m.value))).toEqual(Array.from({ length: 60 - got[0]!.offset }, (_, k) => value(got[0]!.offset + k)));
  }, 30_000);

  test("CLI topic alter: retention set after creation trims every replica; --reset keeps everything again", async () => {
    const cli = async (args: string[]) => {
      const proc = Bun.spawn([process.execPath, join(import.meta.dir, "../../src/main.ts"), ...args, "--sentinel", sentinel.address], {
        stdout: "pipe",
        stderr: "pipe",
        env: { ...process.env, GOULETTE_SENTINEL: "" },
      });
      return { code: await proc.exited, out: await new Response(proc.stdout).text(), err: await new Response(proc.stderr).text() };
    };
    expect((await cli(["topic", "create", "e2e-alter", "--partitions", "1", "--replicas", "3", "--segment-bytes", "4096"])).code).toBe(0);
    const value = (i: number) => `${i}:`.padEnd(500, "x");
    const produce = async (from: number, to: number) => {
      const producer = new Producer({ sentinels: [sentinel.address] });
      for (let i = from; i < to; i++) await producer.send("e2e-alter", [{ value: value(i) }]); // a batch each, ~560 bytes
      await producer.close();
    };
    const logs = () => brokers.map((b) => b.broker.byName.get("e2e-alter/0")!.log);
    const waitAll = async (ok: (l: ReturnType<typeof logs>[number]) => boolean) => {
      const until = Date.now() + 10_000;
      while (!logs().every(ok) && Date.now() < until) await Bun.sleep(50);
    };
    await produce(0, 60);
    await waitAll((l) => l.nextOffset === 60);
    for (const l of logs()) expect([l.nextOffset, l.logStartOffset]).toEqual([60, 0]);

    expect(await cli(["topic", "alter", "e2e-alter"])).toMatchObject({ code: 2 });
    const unknownKey = await cli(["topic", "alter", "e2e-alter", "--reset", "retention.forever"]);
    expect(unknownKey.code).not.toBe(0);
    expect(unknownKey.err).toContain('unknown topic config "retention.forever"');
    expect((await cli(["topic", "alter", "e2e-nope", "--retention-ms", "1000"])).err).toContain("does not exist");

    const altered = await cli(["topic", "alter", "e2e-alter", "--retention-bytes", "8192"]);
    expect(altered).toEqual({ code: 0, out: "altered topic e2e-alter: retention.bytes=8192, segment.bytes=4096\n", err: "" });
    expect((await admin.describeTopic("e2e-alter")).config).toEqual({ "segment.bytes": "4096", "retention.bytes": "8192" });
    // Every replica took it (the answer waits for them), keeps it in its meta, and trims on its next pass.
    for (const b of brokers) {
      const meta = JSON.parse(await Bun.file(join(b.broker.opts.dataDir, "e2e-alter", "0", "partition.json")).text());
      expect(meta.config).toEqual({ "segment.bytes": "4096", "retention.bytes": "8192" });
    }
    await waitAll((l) => l.logStartOffset > 0 && l.sizeBytes <= 8192 + 4096);
    for (const l of logs()) {
      expect(l.logStartOffset).toBeGreaterThan(0);
      expect(l.sizeBytes).toBeLessThanOrEqual(8192 + 4096);
    }

    const reset = await cli(["topic", "alter", "e2e-alter", "--reset", "retention.bytes", "--format", "json"]);
    expect(reset.code).toBe(0);
    expect(JSON.parse(reset.out).config).toEqual({ "segment.bytes": "4096" });
    const startsAfterReset = logs().map((l) => l.logStartOffset);
    await produce(60, 120);
    await waitAll((l) => l.nextOffset === 120);
    // Retention is off again on every replica: nothing more is dropped, the logs grow past the old bound.
    expect(logs().map((l) => l.logStartOffset)).toEqual(startsAfterReset);
    for (const l of logs()) expect([l.nextOffset, l.sizeBytes > 8192 + 4096]).toEqual([120, true]);
    const c = new Consumer({ sentinels: [sentinel.address], maxWaitMs: 200 });
    await c.assignTopic("e2e-alter", "beginning");
    const got = await readAll(c, 120 - startsAfterReset[0]!, 3_000);
    await c.close();
    expect(got.map((m) => dec.decode(m.value))).toEqual(Array.from({ length: 120 - got[0]!.offset }, (_, k) => value(got[0]!.offset + k)));
  }, 40_000);

  test("CLI consume --group: a second run resumes where the first one's --max stopped", async () => {
    await createTopic("e2e-resume", 1, 3);
    const producer = new Producer({ sentinels: [sentinel.address] });
    await producer.send("e2e-resume", Array.from({ length: 8 }, (_, i) => ({ value: `r-${i}` })));
    await producer.close();
    const consume = async (args: string[]) => {
      const out = memorySink(), err = memorySink();
      setIO({ out, err });
      try {
        const code = await consumeRun(["e2e-resume", "--group", "cli-g", "--format", "json", "--timeout-ms", "2000", "--sentinel", sentinel.address, ...args], {});
        expect(err.text()).toBe("");
        expect(code).toBe(0);
      } finally {
        setIO(undefined);
      }
      return out.text().trim().split("\n").filter(Boolean).map((l) => JSON.parse(l).value as string);
    };
    expect(await consume(["--from-beginning", "--max", "5"])).toEqual(["r-0", "r-1", "r-2", "r-3", "r-4"]);
    expect(await consume(["--from-beginning"])).toEqual(["r-5", "r-6", "r-7"]);
  }, 30_000);
});
