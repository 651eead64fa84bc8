import { afterEach, describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { ErrorCode, FetchResponseSchema, ProduceRequestSchema, ProduceResponseSchema } from "../../src/proto/goulette_pb";
import { WireClient, WireError, expectCase, serve, type Body, type ServerConn, type WireServer } from "../../src/wire";
import { encodeFrameBytes } from "../../src/wire/frame";
import { prng, rawExchange, type RawResult } from "./raw";

const stops: (() => void)[] = [];
afterEach(() => {
  for (const s of stops.splice(0)) s();
});

interface Harness {
  server: WireServer;
  good: WireClient;
  handled: Body[];
  closed: ServerConn[];
}

function harness(opts: Partial<Parameters<typeof serve>[0]> = {}): Harness {
  const handled: Body[] = [];
  const closed: ServerConn[] = [];
  const server = serve({
    hostname: "127.0.0.1",
    port: 0,
    maxFrameBytes: 1024 * 1024,
    partialFrameTimeoutMs: 200,
    handle(body) {
      handled.push(body);
      return { case: "produceResponse", value: create(ProduceResponseSchema, { baseOffset: 1n }) };
    },
    onClose: (c) => closed.push(c),
    ...opts,
  });
  const good = new WireClient(`127.0.0.1:${server.port}`, { requestTimeoutMs: 3000 });
  stops.push(() => good.close(), () => server.stop());
  return { server, good, handled, closed };
}

const produce = (batch = new Uint8Array(10)): Body => ({
  case: "produce",
  value: create(ProduceRequestSchema, { topic: "t", batch }),
});

async function stillServes(h: Harness): Promise<void> {
  expect(Number(expectCase(await h.good.call(produce()), "produceResponse").baseOffset)).toBe(1);
}

function prefix(length: number, rest: number[] = []): Uint8Array {
  const b = new Uint8Array(4 + rest.length);
  new DataView(b.buffer).setUint32(0, length);
  b.set(rest, 4);
  return b;
}

function onlyError(r: RawResult): { correlationId: number; code: ErrorCode } {
  expect(r.closedByServer).toBe(true);
  expect(r.frames.length).toBe(1);
  const f = r.frames[0]!;
  if (f.body.case !== "error") throw new Error(`expected an error frame, got ${f.body.case}`);
  return { correlationId: f.correlationId, code: f.body.value.error!.code };
}

describe("bad input on the wire", () => {
  test("length 0: MALFORMED_FRAME, connection closed, others served", async () => {
    const h = harness();
    await stillServes(h);
    expect(onlyError(await rawExchange(h.server.port, prefix(0)))).toEqual({ correlationId: 0, code: ErrorCode.MALFORMED_FRAME });
    await stillServes(h);
  });

  test("length above the maximum: FRAME_TOO_LARGE addressed to the readable correlation id", async () => {
    const h = harness();
    const r = await rawExchange(h.server.port, prefix(1024 * 1024 + 1, [8, 77]));
    expect(onlyError(r)).toEqual({ correlationId: 77, code: ErrorCode.FRAME_TOO_LARGE });
    await stillServes(h);
  });

  test("4 GiB length: refused without allocating it", async () => {
    const h = harness({ maxFrameBytes: 16 * 1024 * 1024 });
    const before = process.memoryUsage().rss;
    const r = await rawExchange(h.server.port, prefix(0xffffffff, [8, 5, 0x12]));
    expect(onlyError(r)).toEqual({ correlationId: 5, code: ErrorCode.FRAME_TOO_LARGE });
    // A 4 GiB (or even a 16 MiB) allocation would show; allow ordinary noise.
    expect(process.memoryUsage().rss - before).toBeLessThan(64 * 1024 * 1024);
    await stillServes(h);
  });

  test("garbage bytes: an error frame and a close", async () => {
    const h = harness();
    const garbage = new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    expect(onlyError(await rawExchange(h.server.port, garbage)).code).toBe(ErrorCode.FRAME_TOO_LARGE);
    // A plausible length with bytes that do not decode as a Frame.
    const junk = new Uint8Array([0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0xff]);
    expect(onlyError(await rawExchange(h.server.port, junk)).code).toBe(ErrorCode.MALFORMED_FRAME);
    expect(h.handled.length).toBe(0);
    await stillServes(h);
  });

  test("truncated frame then close: nothing handled, connection cleaned up", async () => {
    const h = harness();
    const whole = encodeFrameBytes(3, produce(new Uint8Array(5000)));
    const r = await rawExchange(h.server.port, whole.subarray(0, 2000), { endAfterWrite: true });
    expect(r.closedByServer).toBe(true);
    expect(r.frames.length).toBe(0);
    expect(h.handled.length).toBe(0);
    await stillServes(h);
    expect(h.server.connections).toBe(1);
  });

  test("half a frame then a stall: TIMEOUT error and close after partialFrameTimeoutMs", async () => {
    const h = harness();
    const whole = encodeFrameBytes(3, produce(new Uint8Array(5000)));
    const t0 = performance.now();
    const r = await rawExchange(h.server.port, whole.subarray(0, 2500), { waitMs: 3000 });
    expect(onlyError(r).code).toBe(ErrorCode.TIMEOUT);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(190);
    await stillServes(h);
  });

  test("an idle connection between frames is not a stall", async () => {
    const h = harness();
    await stillServes(h);
    await Bun.sleep(450);
    await stillServes(h);
  });

  test("a body the server does not know: UNSUPPORTED_REQUEST to its correlation id, close", async () => {
    const h = harness();
    // Field 200 (length-delimited, empty) is no body case of Frame.
    const frame = [8, 9, 0xc2, 0x0c, 0];
    const r = await rawExchange(h.server.port, prefix(frame.length, frame));
    expect(onlyError(r)).toEqual({ correlationId: 9, code: ErrorCode.UNSUPPORTED_REQUEST });
    await stillServes(h);
  });

  test("a body outside `accepts`: UNSUPPORTED_REQUEST, close", async () => {
    const h = harness({ accepts: ["produce"] });
    const other = encodeFrameBytes(4, { case: "fetchResponse", value: create(FetchResponseSchema, {}) });
    expect(onlyError(await rawExchange(h.server.port, other))).toEqual({ correlationId: 4, code: ErrorCode.UNSUPPORTED_REQUEST });
    await stillServes(h);
  });

  test("good frames before a bad one on the same connection are answered first", async () => {
    const h = harness();
    const bytes = Buffer.concat([encodeFrameBytes(1, produce()), encodeFrameBytes(2, produce()), prefix(0)]);
    const r = await rawExchange(h.server.port, bytes);
    expect(r.closedByServer).toBe(true);
    expect(r.frames.map((f) => [f.correlationId, f.body.case])).toEqual([
      [1, "produceResponse"],
      [2, "produceResponse"],
      [0, "error"],
    ]);
  });

  test("a peer that never reads its responses is dropped once its buffer is full", async () => {
    const big = new Uint8Array(1024 * 1024);
    const h = harness({
      maxBufferedBytes: 4 * 1024 * 1024,
      handle: () => ({ case: "fetchResponse", value: create(FetchResponseSchema, { records: big }) }),
    });
    const { promise: closed, resolve } = Promise.withResolvers<void>();
    const socket = await Bun.connect({
      hostname: "127.0.0.1",
      port: h.server.port,
      socket: { data() {}, close: () => resolve() },
    });
    socket.pause(); // stop reading: the kernel buffers fill, then the server's
    const req = encodeFrameBytes(1, produce());
    const many = Buffer.concat(Array.from({ length: 200 }, () => req));
    socket.write(many);
    await closed;
    expect(h.closed.length).toBe(1);
    socket.terminate();
    const r = expectCase(await h.good.call(produce()), "fetchResponse");
    expect(r.records.length).toBe(big.length);
  });

  test("a client writing to a server that does not read is refused locally, never buffering without bound", async () => {
    const listener = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: { open: (s) => void s.pause(), data() {} },
    });
    stops.push(() => listener.stop(true));
    const c = new WireClient(`127.0.0.1:${listener.port}`, { maxBufferedBytes: 4 * 1024 * 1024, requestTimeoutMs: 2000 });
    stops.push(() => c.close());
    const batch = new Uint8Array(1024 * 1024);
    const results = await Promise.all(Array.from({ length: 100 }, () => c.call(produce(batch)).catch((e) => e as WireError)));
    const overloads = results.filter((r) => r instanceof WireError && r.transport === "overload");
    expect(overloads.length).toBeGreaterThan(0);
    expect(results.every((r) => r instanceof WireError)).toBe(true);
  });

  test("connections beyond maxConnections are refused with an error frame; the others keep working", async () => {
    const h = harness({ maxConnections: 1 });
    await stillServes(h); // the good client holds the one slot
    const r = await rawExchange(h.server.port, new Uint8Array(0));
    expect(onlyError(r).code).toBe(ErrorCode.UNKNOWN);
    expect(h.server.connections).toBe(1);
    await stillServes(h);
  });

  test("fuzz: thousands of seeded random frames, then the server still serves", async () => {
    const seed = 20261125;
    const rnd = prng(seed);
    const h = harness({ maxFrameBytes: 64 * 1024 });
    const valid = [1, 2, 3].map((i) => encodeFrameBytes(i, produce(new Uint8Array(i * 50).fill(i))));
    const makeCase = (): Uint8Array => {
      const kind = rnd(5);
      if (kind === 0) return new Uint8Array(1 + rnd(64)).map(() => rnd(256)); // pure noise
      if (kind === 1) {
        // plausible length, random body
        const body = new Uint8Array(1 + rnd(200)).map(() => rnd(256));
        return Buffer.concat([prefix(body.length), body]);
      }
      const base = valid[rnd(valid.length)]!.slice();
      if (kind === 2) {
        for (let k = 0, n = 1 + rnd(8); k < n; k++) base[rnd(base.length)] = rnd(256); // byte mutations
        return base;
      }
      if (kind === 3) return base.subarray(0, rnd(base.length)); // truncation
      return Buffer.concat([base, new Uint8Array(1 + rnd(20)).map(() => rnd(256))]); // trailing junk
    };
    const cases = 3000;
    const parallel = 50;
    let done = 0;
    for (let i = 0; i < cases; i += parallel) {
      await Promise.all(
        Array.from({ length: Math.min(parallel, cases - i) }, () =>
          rawExchange(h.server.port, makeCase(), { endAfterWrite: true, waitMs: 2000 }).then((r) => {
            done++;
            for (const f of r.frames) expect(f.body.case === "error" || f.body.case === "produceResponse").toBe(true);
          }),
        ),
      );
    }
    expect(done).toBe(cases);
    // Whatever the handler saw decoded as a real body.
    for (const b of h.handled) expect(b.case).toBeString();
    await stillServes(h);
    const results = await Promise.all(Array.from({ length: 100 }, () => h.good.call(produce())));
    expect(results.every((r) => r.case === "produceResponse")).toBe(true);
  }, 30_000);
});
