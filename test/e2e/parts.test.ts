// The fault suite's own parts, so a broken checker, proxy or WAL tear cannot make a run pass by accident.
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Socket, TCPSocketListener } from "bun";
import { EntryType } from "../../src/raft/types";
import { Wal } from "../../src/storage/wal";
import { checkLogs, type ReplicaLog } from "./checker";
import { tearLastWalRecord } from "./harness";
import { ProxyNet } from "./proxy";

function replica(broker: number, role: "leader" | "follower", pairs: [number, string][]): ReplicaLog {
  return { broker, role, highWatermark: (pairs.at(-1)?.[0] ?? -1) + 1, offsets: pairs.map((p) => p[0]), values: pairs.map((p) => p[1]) };
}

describe("checkLogs", () => {
  const sent = new Set(["a", "b", "c", "d"]);
  const good: [number, string][] = [[0, "a"], [1, "b"], [2, "c"]];
  const acks = [{ partition: 0, offset: 0, value: "a" }, { partition: 0, offset: 2, value: "c" }];
  const logsOf = (...rs: ReplicaLog[]) => new Map([[0, rs]]);

  test("accepts identical replicas holding every acknowledged value at its offset", () => {
    expect(checkLogs(logsOf(replica(1, "leader", good), replica(2, "follower", good), replica(3, "follower", good)), acks, sent)).toEqual([]);
  });

  test("reports a follower whose batches differ in bytes where its records do not (a damaged header)", () => {
    const withCrcs = (r: ReplicaLog, crcs: number[]): ReplicaLog => ({ ...r, batchCrcs: crcs });
    const same = logsOf(withCrcs(replica(1, "leader", good), [7, 8]), withCrcs(replica(2, "follower", good), [7, 8]));
    expect(checkLogs(same, acks, sent)).toEqual([]);
    const p = checkLogs(logsOf(withCrcs(replica(1, "leader", good), [7, 8]), withCrcs(replica(2, "follower", good), [7, 9])), acks, sent);
    expect(p).toEqual(["p0: broker 2 holds the leader's records but not its bytes: batch #1 of 2 differs (a header)"]);
  });

  test("reports a lost acknowledgement", () => {
    const p = checkLogs(logsOf(replica(1, "leader", [[0, "a"], [1, "b"]])), acks, sent);
    expect(p.some((l) => l.includes("ack p0/2=c not found"))).toBe(true);
  });

  test("reports an acknowledged value at another offset", () => {
    const p = checkLogs(logsOf(replica(1, "leader", [[0, "a"], [1, "c"], [2, "b"]])), acks, sent);
    expect(p.some((l) => l.includes("ack p0/2=c") && l.includes("p0/1"))).toBe(true);
  });

  test("reports duplicates, values never written and offsets that do not increase", () => {
    const p = checkLogs(logsOf(replica(1, "leader", [[0, "a"], [1, "a"], [1, "zz"], [2, "c"]])), [], sent);
    expect(p.some((l) => l.includes('"a" appears twice'))).toBe(true);
    expect(p.some((l) => l.includes('"zz" was never written'))).toBe(true);
    expect(p.some((l) => l.includes("not strictly increasing"))).toBe(true);
  });

  test("reports a follower that differs from its leader, or is shorter", () => {
    const p = checkLogs(
      logsOf(replica(1, "leader", good), replica(2, "follower", [[0, "a"], [1, "d"], [2, "c"]]), replica(3, "follower", [[0, "a"]])),
      [],
      sent,
    );
    expect(p.filter((l) => l.includes("differs from leader")).length).toBe(2);
  });

  test("reports a duplicate across partitions", () => {
    const logs = new Map([[0, [replica(1, "leader", [[0, "a"]])]], [1, [replica(2, "leader", [[0, "a"]])]]]);
    expect(checkLogs(logs, [], sent).some((l) => l.includes("appears twice"))).toBe(true);
  });
});

describe("ProxyNet", () => {
  let upstream: TCPSocketListener<unknown> | undefined;
  let net: ProxyNet | undefined;
  let client: Socket<unknown> | undefined;
  afterEach(() => {
    client?.end();
    net?.stop();
    upstream?.stop(true);
  });

  const frame = (text: string) => {
    const body = new TextEncoder().encode(text);
    const f = new Uint8Array(4 + body.length);
    new DataView(f.buffer).setUint32(0, body.length, false);
    f.set(body, 4);
    return f;
  };

  async function setup() {
    let got = "";
    let waiters: (() => void)[] = [];
    upstream = Bun.listen<unknown>({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        data(_s, d) {
          got += new TextDecoder().decode(d).replace(/[\x00-\x1f]/g, "|");
          for (const w of waiters.splice(0)) w();
        },
      },
    });
    net = new ProxyNet(() => "x");
    const addr = net.add("b1", upstream.port);
    client = await Bun.connect<unknown>({ hostname: "127.0.0.1", port: Number(addr.split(":")[1]), socket: { data() {} } });
    const until = async (cond: () => boolean) => {
      while (!cond()) await new Promise<void>((r) => waiters.push(r));
    };
    return { received: () => got, until };
  }

  test("passes whole frames, drops them while the link drops, and holds them while it stalls", async () => {
    const { received, until } = await setup();
    client!.write(frame("one"));
    await until(() => received().includes("one"));

    net!.set("x", "b1", "drop");
    client!.write(frame("lost"));
    while (net!.framesDropped() === 0) await Bun.sleep(5); // the proxy judges a frame when it arrives
    net!.set("x", "b1", "pass");
    client!.write(frame("two"));
    await until(() => received().includes("two"));
    expect(received()).not.toContain("lost"); // same connection: had it passed, it would have come first

    net!.set("x", "b1", "stall");
    client!.write(frame("held"));
    while (net!.framesHeld() === 0) await Bun.sleep(5); // wait for the proxy to have it, then check it went nowhere
    expect(received()).not.toContain("held");
    net!.healAll();
    client!.write(frame("three"));
    await until(() => received().includes("three"));
    expect(received().indexOf("held")).toBeLessThan(received().indexOf("three"));
    expect(net!.framesDropped()).toBe(1);
  });

  test("rules are one way: dropping b1 -> x leaves x -> b1 alone", async () => {
    const { received, until } = await setup();
    net!.set("b1", "x", "drop");
    client!.write(frame("in"));
    await until(() => received().includes("in"));
  });
});

describe("tearLastWalRecord", () => {
  for (const cut of [1, 5, 60]) {
    test(`cutting ${cut} bytes of the newest record makes recovery report a torn tail and keep the records before it`, async () => {
      const dir = mkdtempSync(join(tmpdir(), "goulette-e2e-tear-"));
      try {
        const wal = await Wal.open({ dir, fsync: "always", segmentBytes: 64 * 1024 });
        const data = new Uint8Array(40).fill(7);
        wal.appendEntries(1, [1, 2, 3].map((index) => ({ term: 1, index, type: EntryType.Normal, data })));
        await wal.sync();
        await wal.close();
        const r = tearLastWalRecord(dir, cut);
        expect(r?.recordType).toBe(1); // an entry record
        expect(r?.cutBytes).toBe(Math.min(cut, r!.recordBytes - 4));
        const after = await Wal.open({ dir, fsync: "always", segmentBytes: 64 * 1024 });
        try {
          expect(after.cuts.length).toBe(1);
          expect(after.cuts[0]!.midLog).toBe(false);
          expect(after.recovered.get(1)?.entries.map((e) => e.index)).toEqual([1, 2]);
        } finally {
          await after.close();
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
