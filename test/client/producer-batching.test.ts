// When the producer's batches leave: the records added in one turn must leave together (one write, so the
// leader takes them in one Raft round), and a full batch must not wait for the linger time.
import { expect, test } from "bun:test";
import type { Body } from "../../src/wire/errors";
import { Producer } from "../../src/client/index";
import { WireTransport, type Transport } from "../../src/client/transport";
import { FakeBroker, FakeSentinel, cleanupAfterEach } from "./fakes";

const { stops, track } = cleanupAfterEach();

/** The real transport, recording the record count of each produce request. */
class RecordingTransport implements Transport {
  readonly produces: number[] = [];
  private readonly inner = new WireTransport();
  call(address: string, body: Body, timeoutMs: number): Promise<Body> {
    if (body.case === "produce") this.produces.push(body.value.recordCount);
    return this.inner.call(address, body, timeoutMs);
  }
  close(): void {
    this.inner.close();
  }
}

async function setup(lingerMs: number, warmUp: boolean) {
  const s = track(new FakeSentinel("t"));
  const b = track(new FakeBroker(1));
  s.leaders.set(0, b.info);
  s.replicas = [b.info];
  const transport = new RecordingTransport();
  const p = new Producer({ sentinels: [s.address], transport, lingerMs, maxBatchBytes: 16 * 1024 });
  stops.push(() => p.close());
  if (warmUp) {
    await p.send("t", [{ value: "first", partition: 0 }]); // finds the leader
    transport.produces.length = 0;
  }
  return { p, transport };
}

// 20 records of ~1 KiB with 16 KiB batches: one full batch and a remainder.
const value = new Uint8Array(1000);

test("a turn's records leave together: a full batch does not go ahead of the turn's remainder", async () => {
  const { p, transport } = await setup(0, true);
  await Promise.all(Array.from({ length: 20 }, () => p.send("t", [{ value, partition: 0 }])));
  // Sent as soon as it filled, the full batch left one record behind as a batch of its own: 3 batches.
  expect(transport.produces.length).toBe(2);
  expect(transport.produces[0]! + transport.produces[1]!).toBe(20);
});

test("with a linger time, a full batch leaves at the end of the turn, not after the linger", async () => {
  const { p, transport } = await setup(60_000, false);
  const t0 = performance.now();
  const sends = Array.from({ length: 20 }, () => p.send("t", [{ value, partition: 0 }]));
  await sends[0];
  expect(performance.now() - t0).toBeLessThan(5000);
  expect(transport.produces[0]).toBeGreaterThan(10);
  await Promise.all(sends);
});
