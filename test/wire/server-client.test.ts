import { afterEach, describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import {
  ErrorCode,
  FetchResponseSchema,
  MetadataRequestSchema,
  ProduceRequestSchema,
  ProduceResponseSchema,
  RaftBatchSchema,
} from "../../src/proto/goulette_pb";
import { ClientPool, WireClient, WireError, errorBody, expectCase, serve, type Body, type WireServer } from "../../src/wire";
import { protoError } from "../../src/wire/errors";

const started: { stop(): void }[] = [];
const clients: { close(): void }[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  for (const s of started.splice(0)) s.stop();
});

function start(opts: Partial<Parameters<typeof serve>[0]> & Pick<Parameters<typeof serve>[0], "handle">): WireServer {
  const s = serve({ hostname: "127.0.0.1", port: 0, ...opts });
  started.push(s);
  return s;
}
function client(port: number, opts?: ConstructorParameters<typeof WireClient>[1]): WireClient {
  const c = new WireClient(`127.0.0.1:${port}`, opts);
  clients.push(c);
  return c;
}
const produce = (topic: string, batch = new Uint8Array(0)): Body => ({
  case: "produce",
  value: create(ProduceRequestSchema, { topic, batch }),
});
const produced = (baseOffset: number): Body => ({
  case: "produceResponse",
  value: create(ProduceResponseSchema, { baseOffset: BigInt(baseOffset) }),
});

describe("server and client", () => {
  test("pipelined calls with out-of-order async answers each get their own response", async () => {
    const s = start({
      async handle(body) {
        if (body.case !== "produce") return undefined;
        const n = Number(body.value.topic);
        if (n % 3 === 0) await Bun.sleep(n % 7);
        return produced(n);
      },
    });
    const c = client(s.port);
    const results = await Promise.all(Array.from({ length: 2000 }, (_, i) => c.call(produce(String(i)))));
    results.forEach((r, i) => expect(Number(expectCase(r, "produceResponse").baseOffset)).toBe(i));
    expect(c.pending).toBe(0);
  });

  test("batches cross the wire intact through the zero-copy tail, both directions", async () => {
    const s = start({
      handle(body) {
        if (body.case !== "produce") return undefined;
        const out = body.value.batch.slice().reverse();
        return { case: "fetchResponse", value: create(FetchResponseSchema, { nextOffset: 9n, records: out }) };
      },
    });
    const c = client(s.port);
    const batch = new Uint8Array(3 * 1024 * 1024).map((_, i) => (i * 31) & 255);
    const r = expectCase(await c.call(produce("t", batch)), "fetchResponse");
    expect(r.nextOffset).toBe(9n);
    expect(Buffer.from(r.records).equals(Buffer.from(batch.slice().reverse()))).toBe(true);
  });

  test("a WireError thrown by the handler reaches the caller typed, with its leader hint", async () => {
    const s = start({
      handle(body) {
        if (body.case === "metadata") throw new Error("secret stack detail");
        throw new WireError(ErrorCode.NOT_LEADER, "not the leader", { leaderId: 3, leaderAddress: "10.0.0.3:7081" });
      },
    });
    const c = client(s.port);
    // call() resolves with the error body; expectCase turns it into the typed error.
    const res = await c.call(produce("t"));
    expect(res.case).toBe("error");
    let thrown: unknown;
    try {
      expectCase(res, "produceResponse");
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(WireError);
    expect((thrown as WireError).code).toBe(ErrorCode.NOT_LEADER);
    expect((thrown as WireError).leaderId).toBe(3);
    expect((thrown as WireError).leaderAddress).toBe("10.0.0.3:7081");
    const plain = await c.call({ case: "metadata", value: create(MetadataRequestSchema) });
    expect(() => expectCase(plain, "metadataResponse")).toThrow("internal error");
  });

  test("expectCase throws the error carried in a response's own error field, and on a wrong case", () => {
    const withError: Body = {
      case: "produceResponse",
      value: create(ProduceResponseSchema, { error: protoError(ErrorCode.OFFSET_OUT_OF_RANGE, "gone", { earliestOffset: 5, latestOffset: 9 }) }),
    };
    try {
      expectCase(withError, "produceResponse");
      throw new Error("expected a throw");
    } catch (e) {
      expect(e).toBeInstanceOf(WireError);
      expect((e as WireError).code).toBe(ErrorCode.OFFSET_OUT_OF_RANGE);
      expect((e as WireError).earliestOffset).toBe(5);
      expect((e as WireError).latestOffset).toBe(9);
    }
    expect(() => expectCase(produced(1), "fetchResponse")).toThrow(/expected fetchResponse/);
    expect(() => expectCase(errorBody(ErrorCode.UNKNOWN_TOPIC, "no such topic"), "produceResponse")).toThrow("no such topic");
    expect(Number(expectCase(produced(4), "produceResponse").baseOffset)).toBe(4);
  });

  test("a call whose answer never comes rejects with TIMEOUT at its deadline, and later calls still work", async () => {
    const s = start({
      handle(body) {
        if (body.case === "produce" && body.value.topic === "never") return new Promise<Body>(() => {});
        return produced(1);
      },
    });
    const c = client(s.port);
    const t0 = performance.now();
    const err = await c.call(produce("never"), { timeoutMs: 50 }).catch((e) => e);
    expect(err).toBeInstanceOf(WireError);
    expect((err as WireError).code).toBe(ErrorCode.TIMEOUT);
    expect((err as WireError).transport).toBe("timeout");
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(expectCase(await c.call(produce("ok")), "produceResponse")).toBeDefined();
  });

  test("timeouts of mixed lengths each fire at their own deadline", async () => {
    const s = start({ handle: () => new Promise<Body>(() => {}) });
    const c = client(s.port);
    const t0 = performance.now();
    const order: number[] = [];
    const calls = [400, 300, 60, 200, 60].map((ms) =>
      c.call(produce("x"), { timeoutMs: ms }).catch((e: WireError) => {
        expect(e.code).toBe(ErrorCode.TIMEOUT);
        expect(performance.now() - t0).toBeGreaterThanOrEqual(ms - 5);
        order.push(ms);
      }),
    );
    await Promise.all(calls);
    expect(order).toEqual([60, 60, 200, 300, 400]);
    expect(c.pending).toBe(0);
  });

  test("calls in flight reject when the connection is lost; the client reconnects for the next call", async () => {
    let stall = true;
    let conns = 0;
    const s = start({
      onConnection: () => conns++,
      handle(body, ctx) {
        if (stall) {
          queueMicrotask(() => ctx.conn.close());
          return new Promise<Body>(() => {});
        }
        return produced(2);
      },
    });
    const c = client(s.port);
    const err = await c.call(produce("x"), { timeoutMs: 5000 }).catch((e) => e);
    expect((err as WireError).transport).toBe("lost");
    stall = false;
    expect(Number(expectCase(await c.call(produce("y")), "produceResponse").baseOffset)).toBe(2);
    expect(conns).toBe(2);
  });

  test("connect failures reject fast, back off, and a server coming back is reached again", async () => {
    const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = probe.port;
    probe.stop(true);
    const c = client(port, { backoffBaseMs: 20, backoffMaxMs: 40 });
    const e1 = await c.call(produce("a"), { timeoutMs: 2000 }).catch((e) => e);
    expect((e1 as WireError).transport).toBe("connect");
    const s = start({ port, handle: () => produced(7) });
    let ok: Body | undefined;
    for (let i = 0; i < 50 && ok === undefined; i++) {
      ok = await c.call(produce("b"), { timeoutMs: 2000 }).catch(() => undefined);
    }
    expect(Number(expectCase(ok!, "produceResponse").baseOffset)).toBe(7);
    s.stop();
  });

  test("one-way frames reach the handler and get no response", async () => {
    const got: Body[] = [];
    const { promise, resolve } = Promise.withResolvers<void>();
    const s = start({
      handle(body) {
        got.push(body);
        if (got.length === 3) resolve();
        return produced(1); // ignored for one-way frames
      },
    });
    const c = client(s.port);
    for (let i = 0; i < 3; i++) c.send({ case: "raft", value: create(RaftBatchSchema, { from: i, to: 9 }) });
    await promise;
    expect(got.map((b) => b.case)).toEqual(["raft", "raft", "raft"]);
    expect(c.pending).toBe(0);
  });

  test("a server can push one-way frames to a client; a one-way send to nowhere is dropped quietly", async () => {
    const pushed = Promise.withResolvers<Body>();
    const s = start({
      handle(_body, ctx) {
        ctx.conn.send({ case: "raft", value: create(RaftBatchSchema, { from: 7, to: 1 }) });
        return produced(3);
      },
    });
    const c = client(s.port, { onPush: (b) => pushed.resolve(b) });
    expect(Number(expectCase(await c.call(produce("x")), "produceResponse").baseOffset)).toBe(3);
    const b = await pushed.promise;
    expect(b.case === "raft" && b.value.from).toBe(7);

    const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const deadPort = probe.port;
    probe.stop(true);
    const nowhere = client(deadPort);
    nowhere.send({ case: "raft", value: create(RaftBatchSchema, {}) });
    // The failed connect settles the queued one-way frame; nothing is left pending or thrown.
    const e = await nowhere.call(produce("x"), { timeoutMs: 2000 }).catch((err) => err as WireError);
    expect((e as WireError).transport).toBe("connect");
    expect(nowhere.pending).toBe(0);
  });

  test("a handler that returns nothing for a request still answers it", async () => {
    const s = start({ handle: () => undefined });
    const c = client(s.port);
    const res = await c.call(produce("x"));
    expect(() => expectCase(res, "produceResponse")).toThrow(/no response/);
  });

  test("close() rejects pending calls and refuses new ones", async () => {
    const s = start({ handle: () => new Promise<Body>(() => {}) });
    const c = new WireClient(`127.0.0.1:${s.port}`);
    const p = c.call(produce("x"));
    await Bun.sleep(10);
    c.close();
    expect(((await p.catch((e) => e)) as WireError).code).toBe(ErrorCode.SHUTTING_DOWN);
    expect(((await c.call(produce("y")).catch((e) => e)) as WireError).code).toBe(ErrorCode.SHUTTING_DOWN);
  });

  test("a request above the client's max frame size is refused locally", async () => {
    const s = start({ handle: () => produced(1) });
    const c = client(s.port, { maxFrameBytes: 1000 });
    const err = await c.call(produce("x", new Uint8Array(2000))).catch((e) => e);
    expect((err as WireError).code).toBe(ErrorCode.FRAME_TOO_LARGE);
  });

  test("a connection's concurrent async requests are bounded: reading pauses, then resumes", async () => {
    let active = 0;
    let maxActive = 0;
    let peer = "";
    const gate = Promise.withResolvers<void>();
    const s = start({
      maxInFlightPerConnection: 20,
      async handle(_body, ctx) {
        peer = ctx.peer;
        active++;
        maxActive = Math.max(maxActive, active);
        await gate.promise;
        active--;
        return produced(1);
      },
    });
    const c = client(s.port);
    // A few frames per tick, so they arrive in several TCP chunks and the pause can take effect.
    const calls: Promise<Body>[] = [];
    for (let i = 0; i < 200; i++) {
      calls.push(c.call(produce("x")));
      if (i % 10 === 9) await Bun.sleep(0);
    }
    // Give the server time to read whatever it is willing to read while every handler is blocked.
    await Bun.sleep(100);
    const seen = maxActive;
    gate.resolve();
    const results = await Promise.all(calls);
    expect(results.every((r) => r.case === "produceResponse")).toBe(true);
    expect(seen).toBeGreaterThanOrEqual(20);
    // The limit plus what was already decoded from the chunks in hand when reading paused.
    expect(seen).toBeLessThanOrEqual(100);
    expect(peer).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  test("the pool shares one client per address", async () => {
    const s = start({ handle: () => produced(1) });
    const pool = new ClientPool({ requestTimeoutMs: 1000 });
    clients.push({ close: () => pool.closeAll() });
    const a = pool.get(`127.0.0.1:${s.port}`);
    expect(pool.get(`127.0.0.1:${s.port}`)).toBe(a);
    expect(expectCase(await a.call(produce("x")), "produceResponse")).toBeDefined();
    pool.closeAll();
    expect(pool.size).toBe(0);
    expect(pool.get(`127.0.0.1:${s.port}`)).not.toBe(a);
  });

  test("a server that answers garbage fails the calls on that connection, typed, without hanging", async () => {
    for (const reply of [new Uint8Array([0, 0, 0, 0]), new Uint8Array([0xff, 0xff, 0xff, 0xff, 1]), new Uint8Array([0, 0, 0, 3, 0xff, 0xff, 0xff])]) {
      const listener = Bun.listen({
        hostname: "127.0.0.1",
        port: 0,
        socket: { data: (sock) => void sock.write(reply) },
      });
      started.push({ stop: () => listener.stop(true) });
      const c = client(listener.port, { maxFrameBytes: 1024 });
      const err = (await c.call(produce("x"), { timeoutMs: 3000 }).catch((e) => e)) as WireError;
      expect(err).toBeInstanceOf(WireError);
      expect(err.transport).toBe("lost");
      expect([ErrorCode.MALFORMED_FRAME, ErrorCode.FRAME_TOO_LARGE]).toContain(err.code);
      expect(c.connected).toBe(false);
    }
  });

  test("a connection-level error from the server fails the calls on that connection with its code", async () => {
    const s = start({ maxFrameBytes: 100, handle: () => new Promise<Body>(() => {}) });
    const c = client(s.port);
    const waiting = c.call(produce("small"), { timeoutMs: 3000 }).catch((e) => e as WireError);
    await Bun.sleep(20);
    // Too large for the server: answered FRAME_TOO_LARGE on its own id, then the connection closes.
    const big = await c.call(produce("big", new Uint8Array(500)), { timeoutMs: 3000 }).catch((e) => e as WireError);
    if (big instanceof WireError) {
      expect(big.code).toBe(ErrorCode.FRAME_TOO_LARGE);
    } else {
      expect(() => expectCase(big, "produceResponse")).toThrow(/above the maximum/);
    }
    const other = await waiting;
    expect(other).toBeInstanceOf(WireError);
    expect((other as WireError).transport).toBe("lost");
  });

  test("addresses are validated", () => {
    expect(() => new WireClient("nope")).toThrow(/host:port/);
    expect(() => new WireClient("h:70000")).toThrow();
  });
});
