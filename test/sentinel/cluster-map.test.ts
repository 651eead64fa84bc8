import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { ClusterMap, decodeCommand, encodeCommand, type MapCommand } from "../../src/sentinel/cluster-map";

function reg(id: number): MapCommand {
  return { type: "register-broker", id, address: `127.0.0.1:${7000 + id}`, fsyncPolicy: "always", version: "t", capacity: 0 };
}

function create(name: string, placement: number[][]): MapCommand {
  return { type: "create-topic", name, replicationFactor: placement[0]!.length, config: {}, placement };
}

describe("ClusterMap", () => {
  test("create assigns unique group ids that deletion never frees", () => {
    const m = new ClusterMap();
    for (const id of [1, 2, 3]) m.apply(reg(id));
    const a = m.apply(create("a", [[1, 2, 3], [2, 3, 1]]));
    expect(a.ok).toBe(true);
    expect(m.topic("a")!.partitions.map((p) => p.group)).toEqual([1, 2]);
    expect(m.apply({ type: "delete-topic", name: "a" }).ok).toBe(true);
    m.apply(create("a", [[1, 2, 3]]));
    expect(m.topic("a")!.partitions[0]!.group).toBe(3);
  });

  test("firstGroup skips groups brokers hold; skipped ones count as never handed out, across snapshot/restore", () => {
    const m = new ClusterMap();
    for (const id of [1, 2, 3]) m.apply(reg(id));
    m.apply(create("a", [[1, 2, 3]])); // group 1
    m.apply({ ...create("b", [[1, 2, 3], [2, 3, 1]]), firstGroup: 5 } as MapCommand); // groups 5, 6
    expect(m.topic("b")!.partitions.map((p) => p.group)).toEqual([5, 6]);
    m.apply({ ...create("c", [[1, 2, 3]]), firstGroup: 3 } as MapCommand); // lower than next: no effect
    expect(m.topic("c")!.partitions[0]!.group).toBe(7);
    const copy = new ClusterMap();
    copy.restore(JSON.parse(JSON.stringify(m.snapshot())));
    for (const map of [m, copy]) {
      expect([0, 1, 2, 3, 4, 5, 6, 7, 8].map((g) => map.handedOut(g))).toEqual([false, true, false, false, false, true, true, true, false]);
    }
  });

  test("adopt-topic takes back groups never handed out, and refuses ones that were", () => {
    const m = new ClusterMap();
    for (const id of [1, 2, 3]) m.apply(reg(id));
    m.apply(create("a", [[1, 2, 3]])); // group 1
    expect(m.apply({ type: "adopt-topic", name: "lost", partitions: [{ group: 1, replicas: [1, 2, 3] }] })).toMatchObject({ ok: false, code: "CONFLICT" });
    expect(m.apply({ type: "adopt-topic", name: "lost", partitions: [{ group: 6, replicas: [1, 2] }, { group: 4, replicas: [2, 3] }] }).ok).toBe(true);
    expect(m.topic("lost")!.partitions.map((p) => [p.partition, p.group])).toEqual([[0, 6], [1, 4]]);
    // 2, 3 and 5 were skipped: still never handed out, so another lost topic may claim 3.
    expect([1, 2, 3, 4, 5, 6, 7].map((g) => m.handedOut(g))).toEqual([true, false, false, true, false, true, false]);
    expect(m.apply({ type: "adopt-topic", name: "lost2", partitions: [{ group: 3, replicas: [1] }] }).ok).toBe(true);
    expect([2, 3, 5].map((g) => m.handedOut(g))).toEqual([false, true, false]);
    m.apply(create("b", [[1, 2, 3]]));
    expect(m.topic("b")!.partitions[0]!.group).toBe(7);
    expect(m.apply({ type: "adopt-topic", name: "a", partitions: [{ group: 9, replicas: [1] }] })).toMatchObject({ ok: false, code: "TOPIC_EXISTS" });
  });

  test("alter-topic-config replaces the config, moves every partition's epoch, and settles an adopted topic's", () => {
    const m = new ClusterMap();
    for (const id of [1, 2, 3]) m.apply(reg(id));
    m.apply(create("a", [[1, 2, 3], [2, 3, 1]]));
    expect(m.apply({ type: "alter-topic-config", name: "zz", config: {} })).toMatchObject({ ok: false, code: "UNKNOWN_TOPIC" });
    const r = m.apply({ type: "alter-topic-config", name: "a", config: { "retention.ms": "1000" } });
    expect(r.ok).toBe(true);
    expect(m.topic("a")!.config).toEqual({ "retention.ms": "1000" });
    expect(m.topic("a")!.partitions.map((p) => p.epoch)).toEqual([r.epoch, r.epoch]);
    m.apply({ type: "adopt-topic", name: "lost", partitions: [{ group: 9, replicas: [1, 2] }] });
    const copy = new ClusterMap();
    copy.restore(JSON.parse(JSON.stringify(m.snapshot())));
    expect(copy.topic("lost")!.configUnknown).toBe(true);
    expect(copy.apply({ type: "alter-topic-config", name: "lost", config: { "retention.bytes": "1" } }).ok).toBe(true);
    expect([copy.topic("lost")!.configUnknown, copy.topic("lost")!.config]).toEqual([undefined, { "retention.bytes": "1" }]);
  });

  test("next-producer-id never goes below atLeast, and never back", () => {
    const m = new ClusterMap();
    expect(m.apply({ type: "next-producer-id" })).toMatchObject({ ok: true, producerId: 1 });
    expect(m.apply({ type: "next-producer-id", atLeast: 10 })).toMatchObject({ ok: true, producerId: 10 });
    expect(m.apply({ type: "next-producer-id", atLeast: 3 })).toMatchObject({ ok: true, producerId: 11 });
  });

  test("refuses duplicates, unknown topics and bad placements with typed codes", () => {
    const m = new ClusterMap();
    m.apply(reg(1));
    m.apply(reg(2));
    m.apply(create("t", [[1, 2]]));
    const epoch = m.version;
    expect(m.apply(create("t", [[1, 2]]))).toMatchObject({ ok: false, code: "TOPIC_EXISTS" });
    expect(m.apply({ type: "delete-topic", name: "nope" })).toMatchObject({ ok: false, code: "UNKNOWN_TOPIC" });
    expect(m.apply(create("u", [[1, 9]]))).toMatchObject({ ok: false, code: "INVALID_ARGUMENT" });
    expect(m.apply(create("u", [[1, 1]]))).toMatchObject({ ok: false, code: "INVALID_ARGUMENT" });
    expect(m.apply(create("bad/name", [[1]]))).toMatchObject({ ok: false, code: "INVALID_ARGUMENT" });
    expect(m.version).toBe(epoch); // refused commands change nothing
  });

  test("set-replicas is guarded by the partition epoch", () => {
    const m = new ClusterMap();
    for (const id of [1, 2, 3, 4]) m.apply(reg(id));
    m.apply(create("t", [[1, 2, 3]]));
    const p = m.partition("t", 0)!;
    const first = p.epoch;
    const ok = m.apply({ type: "set-replicas", topic: "t", partition: 0, replicas: [1, 2, 3], learners: [4], expectEpoch: first });
    expect(ok.ok).toBe(true);
    expect(m.partition("t", 0)!.learners).toEqual([4]);
    const stale = m.apply({ type: "set-replicas", topic: "t", partition: 0, replicas: [1, 2, 4], learners: [], expectEpoch: first });
    expect(stale).toMatchObject({ ok: false, code: "CONFLICT" });
    expect(m.partitionsOf(4).map((x) => x.topic.name)).toEqual(["t"]);
  });

  test("producer ids are unique and survive snapshot/restore", () => {
    const m = new ClusterMap();
    const a = m.apply({ type: "next-producer-id" });
    const b = m.apply({ type: "next-producer-id" });
    expect(a.ok && b.ok && a.producerId !== b.producerId).toBe(true);
    const copy = new ClusterMap();
    copy.restore(m.snapshot());
    const c = copy.apply({ type: "next-producer-id" });
    expect(c.ok && c.producerId).toBe(3);
  });

  const commandArb: fc.Arbitrary<MapCommand> = fc.oneof(
    fc.integer({ min: 1, max: 5 }).map(reg),
    fc.integer({ min: 1, max: 5 }).map((id): MapCommand => ({ type: "unregister-broker", id })),
    fc
      .tuple(fc.constantFrom("a", "b", "c"), fc.integer({ min: 1, max: 3 }), fc.shuffledSubarray([1, 2, 3, 4, 5], { minLength: 2, maxLength: 2 }))
      .map(([name, n, set]) => create(name, Array.from({ length: n }, () => set))),
    fc.constantFrom("a", "b", "c").map((name): MapCommand => ({ type: "delete-topic", name })),
    fc
      .tuple(fc.constantFrom("a", "b"), fc.integer({ min: 0, max: 2 }), fc.shuffledSubarray([1, 2, 3, 4, 5], { minLength: 1, maxLength: 3 }), fc.integer({ min: 0, max: 30 }))
      .map(([topic, partition, replicas, expectEpoch]): MapCommand => ({ type: "set-replicas", topic, partition, replicas, learners: [], expectEpoch })),
    fc.constant<MapCommand>({ type: "next-producer-id" }),
  );

  test("property: replay of encoded commands, with a snapshot anywhere, gives the same map", () => {
    fc.assert(
      fc.property(fc.array(commandArb, { maxLength: 40 }), fc.nat(), (commands, cut) => {
        const a = new ClusterMap();
        const results = commands.map((c) => a.apply(c));
        const b = new ClusterMap();
        const k = commands.length === 0 ? 0 : cut % commands.length;
        for (let i = 0; i < k; i++) expect(b.apply(decodeCommand(encodeCommand(commands[i]!)))).toEqual(results[i]!);
        const c = new ClusterMap();
        c.restore(JSON.parse(JSON.stringify(b.snapshot())));
        for (let i = k; i < commands.length; i++) expect(c.apply(decodeCommand(encodeCommand(commands[i]!)))).toEqual(results[i]!);
        expect(c.snapshot()).toEqual(a.snapshot());
        // groups are never reused
        const groups = a.allTopics().flatMap((t) => t.partitions.map((p) => p.group));
        expect(new Set(groups).size).toBe(groups.length);
      }),
      { numRuns: 150, seed: 11 },
    );
  });
});
