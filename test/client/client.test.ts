import { afterEach, describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { CreateTopicResponseSchema, ErrorCode, FetchResponseSchema, ListTopicsResponseSchema, ProduceResponseSchema, TopicMetadataSchema } from "../../src/proto/goulette_pb";
import { serve, type WireServer } from "../../src/wire/index";
import { errorBody, protoError } from "../../src/wire/errors";
import { Admin, Consumer, Producer } from "../../src/client/index";
import { memorySink, setIO } from "../../src/cli/output";
import { run as runTopic } from "../../src/cli/commands/topic";
import { FakeBroker, FakeSentinel, cleanupAfterEach } from "./fakes";
import { decodeRecords } from "../../src/client/records";

const { track, closing } = cleanupAfterEach();
afterEach(() => setIO(undefined));

describe("sentinel access", () => {
  test("no sentinel reachable: a clear error within the timeout, not a hang", async () => {
    const admin = closing(new Admin({ sentinels: ["127.0.0.1:1"], sentinelTimeoutMs: 1000 }));
    const t0 = Date.now();
    await expect(admin.listTopics()).rejects.toThrow(/^no sentinel reachable at 127\.0\.0\.1:1 after 1000 ms/);
    expect(Date.now() - t0).toBeLessThan(2500);
  });

  test("the CLI says so on one stderr line and exits 1", async () => {
    const out = memorySink(), err = memorySink();
    setIO({ out, err });
    const t0 = Date.now();
    expect(await runTopic(["list", "--sentinel", "127.0.0.1:1"], {})).toBe(1);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(err.text()).toMatch(/^goulette: no sentinel reachable at 127\.0\.0\.1:1 after 3000 ms[^\n]*\n$/);
    expect(out.text()).toBe("");
  });

  test("follows NOT_SENTINEL_LEADER to the leader it names, after a dead address", async () => {
    const leader = track(serve({
      hostname: "127.0.0.1", port: 0,
      handle: () => ({ case: "listTopicsResponse", value: create(ListTopicsResponseSchema, { topics: [create(TopicMetadataSchema, { name: "t", partitions: 2, replicationFactor: 3 })] }) }),
    }));
    const follower = track(serve({
      hostname: "127.0.0.1", port: 0,
      handle: () => errorBody(ErrorCode.NOT_SENTINEL_LEADER, "not leader", { leaderAddress: `127.0.0.1:${leader.port}` }),
    }));
    const admin = closing(new Admin({ sentinels: ["127.0.0.1:1", `127.0.0.1:${follower.port}`] }));
    const topics = await admin.listTopics();
    expect(topics.map((t) => [t.name, t.partitions, t.replicationFactor])).toEqual([["t", 2, 3]]);
  });

  test("creating a large topic may take the sentinel longer than a usual request; the answer is still awaited", async () => {
    const s = track(serve({
      hostname: "127.0.0.1", port: 0,
      handle: async (body) => {
        if (body.case !== "createTopic") return undefined;
        await Bun.sleep(3_500); // replicas confirming 1,000 partitions
        return { case: "createTopicResponse", value: create(CreateTopicResponseSchema, { topic: create(TopicMetadataSchema, { name: body.value.name, partitions: body.value.partitions, replicationFactor: 3 }) }) };
      },
    }));
    const admin = closing(new Admin({ sentinels: [`127.0.0.1:${s.port}`] })); // default 3 s request timeout
    const t = await admin.createTopic("big", { partitions: 1000 });
    expect([t.name, t.partitions]).toEqual(["big", 1000]);
  });

  test("an error the sentinel answers is passed on as it is", async () => {
    const s = track(new FakeSentinel("t"));
    const p = closing(new Producer({ sentinels: [s.address] }));
    await expect(p.send("missing", [{ value: "x" }])).rejects.toThrow(/no topic missing/);
  });
});

describe("producer", () => {
  test("keyless messages steer around a partition whose leader is slow (adaptive sticky partitioning)", async () => {
    const s = track(new FakeSentinel("t"));
    s.partitions = 3;
    const slow = track(new FakeBroker(1));
    const fast = track(new FakeBroker(2));
    s.leaders.set(0, slow.info);
    s.leaders.set(1, fast.info);
    s.leaders.set(2, fast.info);
    let release!: () => void;
    slow.gate = new Promise<void>((resolve) => (release = resolve));
    const p = closing(new Producer({ sentinels: [s.address], maxBatchBytes: 4096 }));
    const value = "x".repeat(1000); // four to a turn
    const turn = () => Array.from({ length: 4 }, () => p.send("t", [{ value }]));
    try {
      await p.prepare("t"); // metadata known: each turn's sends pick their partition in that turn
      const first = turn(); // the first turn is partition 0's: its batch waits at the slow leader
      await new Promise<void>((resolve) => setTimeout(resolve, 0)); // the next loop iteration: a new turn
      for (let i = 0; i < 6; i++) {
        const acks = Promise.all(turn()).then((r) => r.flat().map((m) => m.partition));
        const outcome = await Promise.race([acks, Bun.sleep(3_000).then(() => "a turn went to the slow partition" as const)]);
        expect(outcome).not.toBe("a turn went to the slow partition");
        expect(outcome as number[]).not.toContain(0);
      }
      release();
      expect((await Promise.all(first)).flat().map((m) => m.partition)).toEqual([0, 0, 0, 0]);
    } finally {
      release();
    }
  });

  test("sends queued at once (metadata known) and sends that waited for it keep the order of the calls", async () => {
    const s = track(new FakeSentinel("t"));
    const b = track(new FakeBroker(1));
    s.leaders.set(0, b.info);
    const p = closing(new Producer({ sentinels: [s.address], maxBatchBytes: 4096, maxBufferedBytes: 8 * 1024 }));
    const value = (tag: string) => `${tag}`.padEnd(600, ".");
    // The first 40 wait for the topic's metadata and the producer id, then for buffer space (8 KiB holds
    // about 13); the next 40, sent once the first one is acknowledged, may be queued at once, but only
    // behind every earlier send still waiting.
    const first = Array.from({ length: 40 }, (_, i) => p.send("t", [{ value: value(`a${i}`) }]));
    await first[0];
    const second = Array.from({ length: 40 }, (_, i) => p.send("t", [{ value: value(`b${i}`) }]));
    const acks = (await Promise.all([...first, ...second])).flat();
    expect(acks.map((a) => a.offset)).toEqual(Array.from({ length: 80 }, (_, i) => i));
    const stored = b.batches.flatMap((batch) => decodeRecords(batch).map((r) => new TextDecoder().decode(r.value).replace(/\.+$/, "")));
    expect(stored).toEqual([...Array.from({ length: 40 }, (_, i) => `a${i}`), ...Array.from({ length: 40 }, (_, i) => `b${i}`)]);
  });

  test("batches what is sent together, with contiguous sequence numbers and offsets", async () => {
    const s = track(new FakeSentinel("t"));
    const b = track(new FakeBroker(1));
    s.leaders.set(0, b.info);
    const p = closing(new Producer({ sentinels: [s.address], maxBatchBytes: 4096 }));
    const sends = Array.from({ length: 300 }, (_, i) => p.send("t", [{ value: `m-${i}`.padEnd(40, ".") }]));
    const acks = (await Promise.all(sends)).flat();
    expect(acks.map((a) => a.offset)).toEqual(Array.from({ length: 300 }, (_, i) => i));
    expect(b.produced.length).toBeGreaterThan(1); // 300 x ~62 bytes does not fit 4 KiB
    expect(b.produced.length).toBeLessThan(20);
    let seq = 0;
    for (const r of b.produced) {
      expect(r.producerId).toBe(42n);
      expect(r.baseSequence).toBe(seq);
      seq += r.recordCount;
    }
    expect(seq).toBe(300);
  });

  test("while a partition's in-flight batches are out, messages sent one at a time gather into the next batch", async () => {
    const s = track(new FakeSentinel("t"));
    const b = track(new FakeBroker(1));
    s.leaders.set(0, b.info);
    const p = closing(new Producer({ sentinels: [s.address] }));
    await p.send("t", [{ value: "warm-up" }]); // leader known
    let open!: () => void;
    b.gate = new Promise<void>((r) => (open = r));
    const sends: Promise<unknown>[] = [];
    // One message per event-loop turn, as a busy application produces them.
    for (let i = 0; i < 100; i++) {
      sends.push(p.send("t", [{ value: `m-${i}` }]));
      await new Promise<void>((r) => setImmediate(r));
    }
    const requestsWhileHeld = b.produced.length - 1;
    expect(requestsWhileHeld).toBe(4); // the in-flight limit: the other messages wait, together
    b.gate = undefined;
    open();
    await Promise.all(sends);
    const requests = b.produced.slice(1);
    expect(requests.reduce((n, r) => n + r.recordCount, 0)).toBe(100);
    // Without the limit this would be ~100 requests of one message each.
    expect(requests.length).toBeLessThanOrEqual(requestsWhileHeld + 2);
  });

  test("NOT_LEADER with a hint: the batch goes to the named leader with the same sequence", async () => {
    const s = track(new FakeSentinel("t"));
    const old = track(new FakeBroker(1));
    const next = track(new FakeBroker(2));
    s.leaders.set(0, old.info);
    old.onProduce = () => ({ case: "produceResponse", value: create(ProduceResponseSchema, { error: protoError(ErrorCode.NOT_LEADER, "moved", { leaderId: 2, leaderAddress: next.address }) }) });
    const p = closing(new Producer({ sentinels: [s.address] }));
    const acks = await p.send("t", [{ value: "a" }, { value: "b" }]);
    expect(acks).toEqual([{ topic: "t", partition: 0, offset: 0 }, { topic: "t", partition: 0, offset: 1 }]);
    expect(old.produced.length).toBe(1);
    expect(next.produced.map((r) => [r.baseSequence, r.recordCount])).toEqual([[0, 2]]);
    expect(Buffer.from(next.produced[0]!.batch)).toEqual(Buffer.from(old.produced[0]!.batch));
    const more = await p.send("t", [{ value: "c" }]);
    expect(more[0]!.offset).toBe(2);
    expect(old.produced.length).toBe(1); // the hint stuck
  });

  test("a leader that cannot be reached is reported to the sentinel, and the new leader found", async () => {
    const s = track(new FakeSentinel("t"));
    const dead = new FakeBroker(1);
    const deadInfo = dead.info;
    dead.stop();
    const alive = track(new FakeBroker(2));
    s.leaders.set(0, deadInfo);
    // The sentinel learns of the failure only from the client's report, as when its own probe agrees.
    const handle = s.handle.bind(s);
    s.handle = (body) => {
      if (body.case === "getTopicLeader" && body.value.unreachableBrokers.includes(1)) s.leaders.set(0, alive.info);
      return handle(body);
    };
    const p = closing(new Producer({ sentinels: [s.address] }));
    const acks = await p.send("t", [{ value: "x" }]);
    expect(acks[0]).toEqual({ topic: "t", partition: 0, offset: 0 });
    expect(s.leaderRequests.some((r) => r.unreachableBrokers.includes(1))).toBe(true);
    expect(alive.produced.length).toBe(1);
  });

  test("failover: a replica still naming the dead leader is not believed; another replica is tried", async () => {
    const s = track(new FakeSentinel("t"));
    const dead = new FakeBroker(1);
    const deadInfo = dead.info;
    dead.stop();
    const stale = track(new FakeBroker(2));
    const elected = track(new FakeBroker(3));
    s.leaders.set(0, deadInfo); // the sentinel has not noticed either
    s.replicas = [deadInfo, stale.info, elected.info];
    stale.onProduce = () => ({ case: "produceResponse", value: create(ProduceResponseSchema, { error: protoError(ErrorCode.NOT_LEADER, "old news", { leaderId: 1, leaderAddress: deadInfo.address }) }) });
    const p = closing(new Producer({ sentinels: [s.address] }));
    const t0 = Date.now();
    const acks = await p.send("t", [{ value: "x" }]);
    expect(acks[0]!.offset).toBe(0);
    expect(elected.produced.length).toBe(1);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(s.leaderRequests.some((r) => r.unreachableBrokers.includes(1))).toBe(true);
  });

  test("a retried batch that the broker already appended is not appended twice", async () => {
    const s = track(new FakeSentinel("t"));
    const b = track(new FakeBroker(1));
    s.leaders.set(0, b.info);
    let dropped = false;
    // First attempt: appended, but the answer is lost (a timeout on the client's side).
    b.onProduce = (req) => {
      if (dropped) return undefined;
      dropped = true;
      b.append(req.batch);
      b.seqToOffset.set(`${req.producerId}/${req.partition}/${req.baseSequence}`, 0);
      b.nextSequence.set(`${req.producerId}/${req.partition}`, req.baseSequence + req.recordCount);
      return { case: "produceResponse", value: create(ProduceResponseSchema, { error: protoError(ErrorCode.TIMEOUT, "replication timed out") }) };
    };
    const p = closing(new Producer({ sentinels: [s.address] }));
    const acks = await p.send("t", [{ value: "once" }]);
    expect(acks[0]!.offset).toBe(0);
    expect(b.produced.length).toBe(2);
    expect(b.nextOffset).toBe(1);
  });

  test("gives up with a clear error when no leader appears within the delivery timeout", async () => {
    const s = track(new FakeSentinel("t"));
    const p = closing(new Producer({ sentinels: [s.address], deliveryTimeoutMs: 400 }));
    const t0 = Date.now();
    await expect(p.send("t", [{ value: "x" }])).rejects.toThrow(/could not deliver to t\/0 within 400 ms.*LEADER_NOT_AVAILABLE/);
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  test("send() waits while the unacknowledged bytes are at their limit", async () => {
    const s = track(new FakeSentinel("t"));
    const b = track(new FakeBroker(1));
    s.leaders.set(0, b.info);
    let open!: () => void;
    b.gate = new Promise<void>((resolve) => (open = resolve));
    const p = closing(new Producer({ sentinels: [s.address], maxBufferedBytes: 2000 }));
    const first = p.send("t", [{ value: "a".repeat(1500) }, { value: "b".repeat(1500) }]);
    let secondQueued = false;
    const second = p.send("t", [{ value: "c" }]).then((r) => ((secondQueued = true), r));
    while (b.produced.length === 0) await Bun.sleep(5);
    await Bun.sleep(50);
    expect(b.produced.length).toBe(1); // the third message is held back, not sent
    expect(secondQueued).toBe(false);
    open();
    expect((await first).map((a) => a.offset)).toEqual([0, 1]);
    expect((await second)[0]!.offset).toBe(2);
  });

  test("one send() over two partitions: results in the order given; one refused batch fails the call and frees every record's space", async () => {
    const s = track(new FakeSentinel("t"));
    s.partitions = 2;
    const b0 = track(new FakeBroker(1));
    const b1 = track(new FakeBroker(2));
    s.leaders.set(0, b0.info);
    s.leaders.set(1, b1.info);
    // Each record (~1.4 KB) alone fills the buffer: a record whose space is never given back blocks every later send.
    const p = closing(new Producer({ sentinels: [s.address], maxBufferedBytes: 1000 }));
    const both = (tag: string) => [
      { value: `${tag}-1`.padEnd(1400, "."), partition: 1 },
      { value: `${tag}-0`.padEnd(1400, "."), partition: 0 },
    ];
    expect(await p.send("t", both("a"))).toEqual([
      { topic: "t", partition: 1, offset: 0 },
      { topic: "t", partition: 0, offset: 0 },
    ]);
    let refuse = true;
    b1.onProduce = () => {
      if (!refuse) return undefined;
      refuse = false;
      return { case: "produceResponse", value: create(ProduceResponseSchema, { error: protoError(ErrorCode.CORRUPT_BATCH, "bad crc") }) };
    };
    await expect(p.send("t", both("b"))).rejects.toMatchObject({ code: ErrorCode.CORRUPT_BATCH });
    // Both records of the failed call gave their space back (partition 0's was acknowledged, partition 1's
    // refused): the next call goes through instead of waiting forever for space.
    const stuck = Bun.sleep(3000).then(() => Promise.reject(new Error("still waiting for buffer space")));
    const third = await Promise.race([p.send("t", both("c")), stuck]);
    expect(third.map((m) => m.partition)).toEqual([1, 0]);
    expect(third[1]!.offset).toBe(2); // partition 0 took a-0, b-0 and c-0
    const values = (b: FakeBroker) => b.batches.flatMap((x) => decodeRecords(x).map((r) => new TextDecoder().decode(r.value).replace(/\.+$/, "")));
    expect(values(b0)).toEqual(["a-0", "b-0", "c-0"]);
    expect(values(b1)).toEqual(["a-1", "c-1"]);
  });

  test("a message too large for any batch is refused before it takes a sequence number", async () => {
    const s = track(new FakeSentinel("t"));
    const b = track(new FakeBroker(1));
    s.leaders.set(0, b.info);
    const p = closing(new Producer({ sentinels: [s.address] }));
    await expect(p.send("t", [{ value: new Uint8Array(9 * 1024 * 1024) }])).rejects.toThrow(/larger than the \d+-byte limit/);
    expect(await p.send("t", [{ value: "small" }])).toEqual([{ topic: "t", partition: 0, offset: 0 }]);
    expect(b.produced.map((r) => r.baseSequence)).toEqual([0]);
  });

  test("after a batch is given up, the partition starts over under a new producer id instead of stalling", async () => {
    const s = track(new FakeSentinel("t"));
    const b = track(new FakeBroker(1));
    s.leaders.set(0, b.info);
    let refused = false;
    b.onProduce = () => {
      if (refused) return undefined;
      refused = true;
      return { case: "produceResponse", value: create(ProduceResponseSchema, { error: protoError(ErrorCode.CORRUPT_BATCH, "bad crc") }) };
    };
    const p = closing(new Producer({ sentinels: [s.address] }));
    await expect(p.send("t", [{ value: "lost" }])).rejects.toMatchObject({ code: ErrorCode.CORRUPT_BATCH, message: "bad crc" });
    const t0 = Date.now();
    expect(await p.send("t", [{ value: "next" }])).toEqual([{ topic: "t", partition: 0, offset: 0 }]);
    expect(Date.now() - t0).toBeLessThan(1000);
    const last = b.produced[b.produced.length - 1]!;
    expect([last.producerId, last.baseSequence]).toEqual([43n, 0]);
  });

  test("keyed messages stay on one partition; keyless ones fill a batch's worth per partition and turn, then spread", async () => {
    const s = track(new FakeSentinel("t"));
    s.partitions = 3;
    const b = track(new FakeBroker(1));
    for (let i = 0; i < 3; i++) s.leaders.set(i, b.info);
    const p = closing(new Producer({ sentinels: [s.address], maxBatchBytes: 4096 }));
    const keyed = await p.send("t", Array.from({ length: 6 }, () => ({ key: "k", value: "v" })));
    expect(new Set(keyed.map((a) => a.partition)).size).toBe(1);
    const kib = () => ({ value: "v".repeat(1000) });
    // ~1 KiB each, all in one turn: one partition takes TURN_LIMIT batches' worth (16 of them), the next the rest.
    const parts = (await p.send("t", Array.from({ length: 24 }, kib))).map((a) => a.partition);
    expect(parts.filter((x, i) => i === 0 || parts[i - 1] !== x).length).toBe(2);
    expect(parts.filter((x) => x === parts[0]).length).toBe(16);
    // Four a turn (a batch's worth): every turn is the next partition's, round-robin.
    const spread: number[] = [];
    for (let t = 0; t < 6; t++) {
      const turn = (await p.send("t", Array.from({ length: 4 }, kib))).map((a) => a.partition);
      expect(new Set(turn).size).toBe(1);
      spread.push(turn[0]!);
    }
    for (const x of [0, 1, 2]) expect(spread.filter((y) => y === x).length).toBe(2);
  });
});

describe("consumer", () => {
  test("long-polls at the log end and returns a message as soon as it is appended", async () => {
    const s = track(new FakeSentinel("t"));
    const b = track(new FakeBroker(1));
    s.leaders.set(0, b.info);
    s.replicas = [b.info];
    const p = closing(new Producer({ sentinels: [s.address] }));
    await p.send("t", [{ key: "k0", value: "first" }]);
    const c = closing(new Consumer({ sentinels: [s.address], maxWaitMs: 2000 }));
    c.assign([{ topic: "t", partition: 0, from: "beginning" }]);
    const first = await c.poll(2000);
    expect(first.map((m) => [m.offset, new TextDecoder().decode(m.value), m.key && new TextDecoder().decode(m.key)])).toEqual([[0, "first", "k0"]]);
    const t0 = Date.now();
    const pending = c.poll(3000);
    setTimeout(() => void p.send("t", [{ value: "second" }]), 150);
    const second = await pending;
    expect(second.map((m) => m.offset)).toEqual([1]);
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(b.fetches.some((f) => f.maxWaitMs === 2000 && f.offset === 1n)).toBe(true);
  });

  test("reads from a follower when asked, and from the latest offset", async () => {
    const s = track(new FakeSentinel("t"));
    const leader = track(new FakeBroker(1));
    const follower = track(new FakeBroker(2));
    s.leaders.set(0, leader.info);
    s.replicas = [leader.info, follower.info];
    const p = closing(new Producer({ sentinels: [s.address] }));
    await p.send("t", [{ value: "a" }, { value: "b" }]);
    for (const batch of leader.batches) follower.append(batch);
    const c = closing(new Consumer({ sentinels: [s.address], readFrom: "follower", maxWaitMs: 100 }));
    c.assign([{ topic: "t", partition: 0, from: 1 }]);
    const got = await c.poll(1000);
    expect(got.map((m) => m.offset)).toEqual([1]);
    expect(follower.fetches.length).toBeGreaterThan(0);
    expect(leader.fetches.length).toBe(0);

    const tail = closing(new Consumer({ sentinels: [s.address], maxWaitMs: 100 }));
    tail.assign([{ topic: "t", partition: 0, from: "latest" }]);
    while (!tail.caughtUp()) await tail.poll(100);
    expect(tail.position("t", 0)).toBe(2);
  });

  test("a follower that takes no more writes (STORAGE_ERROR at its end) is left for another follower", async () => {
    const s = track(new FakeSentinel("t"));
    const leader = track(new FakeBroker(1));
    const stale = track(new FakeBroker(2));
    const healthy = track(new FakeBroker(3));
    s.leaders.set(0, leader.info);
    s.replicas = [leader.info, stale.info, healthy.info];
    const p = closing(new Producer({ sentinels: [s.address] }));
    await p.send("t", [{ value: "a" }]);
    await p.send("t", [{ value: "b" }, { value: "c" }]);
    // The stale replica left its group after the first batch; the healthy one has everything.
    stale.append(leader.batches[0]!);
    for (const batch of leader.batches) healthy.append(batch);
    stale.onFetch = (req) =>
      Number(req.offset) >= stale.nextOffset
        ? { case: "fetchResponse", value: create(FetchResponseSchema, { error: protoError(ErrorCode.STORAGE_ERROR, "t/0: this replica takes no more writes; read from another replica") }) }
        : undefined;
    const c = closing(new Consumer({ sentinels: [s.address], readFrom: "follower", maxWaitMs: 100 }));
    c.assign([{ topic: "t", partition: 0, from: "beginning" }]);
    const got: string[] = [];
    const until = Date.now() + 3000;
    while (got.length < 3 && Date.now() < until) got.push(...(await c.poll(200)).map((m) => new TextDecoder().decode(m.value)));
    expect(got).toEqual(["a", "b", "c"]);
    expect(stale.fetches.length).toBeGreaterThan(0); // it was asked first, and served what it held
    expect(healthy.fetches.length).toBeGreaterThan(0);
    expect(leader.fetches.length).toBe(0);
  });

  test("a leader that cannot be reached: a live replica's NOT_LEADER hint leads to the new leader", async () => {
    const s = track(new FakeSentinel("t"));
    const dead = new FakeBroker(1);
    const deadInfo = dead.info;
    dead.stop();
    const follower = track(new FakeBroker(2));
    const elected = track(new FakeBroker(3));
    s.leaders.set(0, deadInfo);
    s.replicas = [deadInfo, follower.info, elected.info];
    follower.onFetch = () => ({ case: "fetchResponse", value: create(FetchResponseSchema, { error: protoError(ErrorCode.NOT_LEADER, "not me", { leaderId: 3, leaderAddress: elected.address }) }) });
    s.leaders.set(0, elected.info);
    const p = closing(new Producer({ sentinels: [s.address] }));
    await p.send("t", [{ value: "x" }, { value: "y" }]);
    s.leaders.set(0, deadInfo); // the sentinel has not caught up
    const c = closing(new Consumer({ sentinels: [s.address], maxWaitMs: 100 }));
    c.assign([{ topic: "t", partition: 0, from: "beginning" }]);
    const got: string[] = [];
    const until = Date.now() + 3000;
    while (got.length < 2 && Date.now() < until) got.push(...(await c.poll(200)).map((m) => new TextDecoder().decode(m.value)));
    expect(got).toEqual(["x", "y"]);
    expect(elected.fetches.length).toBeGreaterThan(0);
  });
});
