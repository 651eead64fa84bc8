// The broker's beats to the sentinel: a full report when anything changed (or every few seconds), an
// "unchanged" beat otherwise, and a full one again whenever the sentinel asks for it.
import { afterEach, describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { KeepAliveResponseSchema, PartitionStatusSchema, RegisterBrokerResponseSchema } from "../../src/proto/goulette_pb";
import { SentinelSession } from "../../src/broker/sentinel-session";
import { silentLogger } from "../../src/log";
import { ClientPool, serve, type WireServer } from "../../src/wire";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

interface Beat {
  unchanged: boolean;
  partitions: number;
}

/** A sentinel that records every KeepAlive and answers `sendFull` when told to. */
function fakeSentinel(keepAliveMs: number) {
  const beats: Beat[] = [];
  let askFull = false;
  const server: WireServer = serve({
    hostname: "127.0.0.1",
    port: 0,
    handle: (body) => {
      if (body.case === "registerBroker") return { case: "registerBrokerResponse", value: create(RegisterBrokerResponseSchema, { keepAliveIntervalMs: keepAliveMs }) };
      if (body.case === "keepAlive") {
        beats.push({ unchanged: body.value.unchanged, partitions: body.value.partitions.length });
        const sendFull = askFull && body.value.unchanged;
        if (sendFull) askFull = false;
        return { case: "keepAliveResponse", value: create(KeepAliveResponseSchema, { sendFull }) };
      }
      return undefined;
    },
  });
  cleanups.push(() => server.stop());
  return { address: `127.0.0.1:${server.port}`, beats, askFull: () => (askFull = true) };
}

async function until(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await Bun.sleep(2);
  }
}

describe("sentinel session", () => {
  test("unchanged beats between full reports; a change, the periodic refresh and the sentinel's ask each bring a full one", async () => {
    const s = fakeSentinel(2);
    let fingerprint = "a";
    let statusCalls = 0;
    const pool = new ClientPool();
    cleanups.push(() => pool.closeAll());
    const session = new SentinelSession(
      {
        brokerId: 1,
        address: "127.0.0.1:1",
        sentinels: [s.address],
        fsyncPolicy: "always",
        version: "test",
        status: () => {
          statusCalls++;
          return [create(PartitionStatusSchema, { topic: "t", partition: 0 }), create(PartitionStatusSchema, { topic: "t", partition: 1 })];
        },
        fingerprint: () => fingerprint,
      },
      pool,
      silentLogger,
    );
    cleanups.push(() => session.halt());
    session.start();

    await until(() => s.beats.length >= 30);
    expect(s.beats[0]).toEqual({ unchanged: false, partitions: 2 });
    expect(s.beats.slice(1, 26).every((b) => b.unchanged && b.partitions === 0)).toBe(true);
    expect(s.beats[26]).toEqual({ unchanged: false, partitions: 2 }); // the periodic full report
    expect(statusCalls).toBe(s.beats.filter((b) => !b.unchanged).length); // statuses built only when sent

    let n = s.beats.length;
    fingerprint = "b";
    await until(() => s.beats.length >= n + 3);
    expect(s.beats.slice(n).find((b) => !b.unchanged)).toEqual({ unchanged: false, partitions: 2 });
    expect(s.beats.at(-1)!.unchanged).toBe(true);

    n = s.beats.length;
    s.askFull();
    await until(() => s.beats.length >= n + 4);
    const after = s.beats.slice(n);
    const asked = after.findIndex((b) => b.unchanged);
    expect(after[asked + 1]).toEqual({ unchanged: false, partitions: 2 }); // right after the sentinel asked
  });
});
