// The broker's beats to the sentinel: a full report first and every few seconds, then what changed (a delta,
// to a sentinel that takes them; a full report to one that does not), "unchanged" when nothing did, and a
// full one again after any beat the sentinel did not take.
import { afterEach, describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { ErrorCode, KeepAliveResponseSchema, PartitionStatusSchema, RegisterBrokerResponseSchema } from "../../src/proto/goulette_pb";
import { SentinelSession } from "../../src/broker/sentinel-session";
import type { StatusReport } from "../../src/broker/status-reports";
import { silentLogger } from "../../src/log";
import { ClientPool, serve, WireError, type WireServer } from "../../src/wire";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

interface Beat {
  unchanged: boolean;
  delta: boolean;
  partitions: number;
}

/** A sentinel that records every KeepAlive; answers `sendFull` or fails a beat when told to. */
function fakeSentinel(keepAliveMs: number, acceptsDeltaReports: boolean) {
  const beats: Beat[] = [];
  let askFull = false;
  let failNext = false;
  const server: WireServer = serve({
    hostname: "127.0.0.1",
    port: 0,
    handle: (body) => {
      if (body.case === "registerBroker") {
        return { case: "registerBrokerResponse", value: create(RegisterBrokerResponseSchema, { keepAliveIntervalMs: keepAliveMs, acceptsDeltaReports }) };
      }
      if (body.case === "keepAlive") {
        beats.push({ unchanged: body.value.unchanged, delta: body.value.delta, partitions: body.value.partitions.length });
        if (failNext) {
          failNext = false;
          throw new WireError(ErrorCode.TIMEOUT, "lost beat");
        }
        const sendFull = askFull && (body.value.unchanged || body.value.delta);
        if (sendFull) askFull = false;
        return { case: "keepAliveResponse", value: create(KeepAliveResponseSchema, { sendFull }) };
      }
      return undefined;
    },
  });
  cleanups.push(() => server.stop());
  return { address: `127.0.0.1:${server.port}`, beats, askFull: () => (askFull = true), failNext: () => (failNext = true) };
}

async function until(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await Bun.sleep(2);
  }
}

/**
 * A broker's side as the session sees it: `changed` statuses are due (or none), full reports hold all
 * three; records which reports were taken (by the order they were asked for, which is the beats' order).
 */
function reporter() {
  const r = { changed: 0, asked: [] as { full: boolean; deltas: boolean }[], taken: [] as number[] };
  const statuses = (n: number) => Array.from({ length: n }, (_, i) => create(PartitionStatusSchema, { topic: "t", partition: i }));
  const report = (o: { full: boolean; deltas: boolean }): StatusReport => {
    const id = r.asked.push({ full: o.full, deltas: o.deltas }) - 1;
    const full = o.full || (r.changed > 0 && !o.deltas);
    const partitions = statuses(full ? 3 : r.changed);
    return { full, partitions, taken: () => r.taken.push(id) };
  };
  return { r, report };
}

function startSession(address: string, report: (o: { full: boolean; deltas: boolean; nowMs: number }) => StatusReport): void {
  const pool = new ClientPool();
  cleanups.push(() => pool.closeAll());
  const session = new SentinelSession(
    { brokerId: 1, address: "127.0.0.1:1", sentinels: [address], fsyncPolicy: "always", version: "test", report },
    pool,
    silentLogger,
  );
  cleanups.push(() => session.halt());
  session.start();
}

describe("sentinel session", () => {
  test("a full report, then unchanged beats or deltas, a full one every 150 beats and after any beat not taken", async () => {
    const s = fakeSentinel(1, true);
    const { r, report } = reporter();
    startSession(s.address, report);

    await until(() => s.beats.length >= 155);
    expect(s.beats[0]).toEqual({ unchanged: false, delta: false, partitions: 3 });
    expect(s.beats.slice(1, 151).every((b) => b.unchanged && b.partitions === 0)).toBe(true);
    expect(s.beats[151]).toEqual({ unchanged: false, delta: false, partitions: 3 }); // the periodic full report
    expect(r.asked.slice(0, 152).map((a) => a.full)).toEqual([true, ...Array<boolean>(150).fill(false), true]);
    expect(r.asked.every((a) => a.deltas)).toBe(true); // the sentinel said it takes deltas

    // Something changed: only that goes out.
    let n = s.beats.length;
    r.changed = 2;
    await until(() => s.beats.length >= n + 3);
    expect(s.beats.slice(n).find((b) => !b.unchanged)).toEqual({ unchanged: false, delta: true, partitions: 2 });

    // A beat the sentinel did not take (no answer): the next report is full, and the lost one was never taken.
    n = s.beats.length;
    s.failNext();
    await until(() => s.beats.length >= n + 3);
    expect(s.beats[n]).toEqual({ unchanged: false, delta: true, partitions: 2 });
    expect(s.beats[n + 1]).toEqual({ unchanged: false, delta: false, partitions: 3 });
    // Reports and beats pair up in order: the lost delta was never taken, the full one after it was.
    await until(() => r.taken.includes(n + 1));
    expect(r.taken.includes(n)).toBe(false);
    expect(r.asked[n + 1]!.full).toBe(true);

    // The sentinel holds no report to build on and asks for a full one: the very next beat is full.
    r.changed = 0;
    n = s.beats.length;
    s.askFull();
    await until(() => s.beats.length >= n + 4);
    const after = s.beats.slice(n);
    const asked = after.findIndex((b) => b.unchanged);
    expect(after[asked + 1]).toEqual({ unchanged: false, delta: false, partitions: 3 });
  });

  test("a sentinel that takes no deltas gets a full report whenever anything changed, and every 25 beats", async () => {
    const s = fakeSentinel(2, false);
    const { r, report } = reporter();
    startSession(s.address, report);
    await until(() => s.beats.length >= 28);
    expect(r.asked.slice(0, 27).map((a) => a.full)).toEqual([true, ...Array<boolean>(25).fill(false), true]);
    r.changed = 1;
    const n = s.beats.length;
    await until(() => s.beats.length >= n + 3);
    expect(r.asked.every((a) => !a.deltas)).toBe(true);
    expect(s.beats.every((b) => !b.delta)).toBe(true);
    expect(s.beats.slice(n + 1).every((b) => !b.unchanged && b.partitions === 3)).toBe(true);
  });
});
