import { describe, expect, test } from "bun:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  ErrorCode,
  FetchResponseSchema,
  FrameSchema,
  ProduceRequestSchema,
  RaftBatchSchema,
  ReplicateFragmentResponseSchema,
} from "../../src/proto/goulette_pb";
import { FrameDecoder, FrameStreamError } from "../../src/wire/decoder";
import type { Body } from "../../src/wire/errors";
import { decodeFrame, encodeFrame, encodeFrameBytes, peekCorrelationId } from "../../src/wire/frame";

function produce(batch: Uint8Array): Body {
  return {
    case: "produce",
    value: create(ProduceRequestSchema, { topic: "orders", partition: 3, producerId: 2n ** 40n, baseSequence: 9, batch }),
  };
}

describe("frame codec", () => {
  test("a zero-copy tail frame is byte-identical to the generated encoder's output", () => {
    const batch = new Uint8Array(70_000).map((_, i) => i * 7);
    const cases: Body[] = [
      produce(batch),
      { case: "fetchResponse", value: create(FetchResponseSchema, { highWatermark: 5n, nextOffset: 3n, records: batch }) },
      { case: "replicateFragmentResponse", value: create(ReplicateFragmentResponseSchema, { crc32: 77, done: true, data: batch }) },
      produce(new Uint8Array(0)),
    ];
    for (const body of cases) {
      for (const id of [0, 1, 300, 2 ** 53 - 1]) {
        const f = encodeFrame(id, body);
        if (body.value !== undefined && batch.length > 0 && f.tail !== undefined) expect(f.tail).toBe(batch);
        const expected = toBinary(FrameSchema, create(FrameSchema, { correlationId: BigInt(id), body }));
        const bytes = encodeFrameBytes(id, body);
        expect(new DataView(bytes.buffer).getUint32(0)).toBe(bytes.length - 4);
        expect(Buffer.from(bytes.subarray(4)).equals(Buffer.from(expected))).toBe(true);
        expect(fromBinary(FrameSchema, bytes.subarray(4)).body.case).toBe(body.case);
      }
    }
  });

  test("encoding leaves the caller's message intact", () => {
    const batch = new Uint8Array([1, 2, 3]);
    const body = produce(batch);
    encodeFrame(1, body);
    expect((body.value as { batch: Uint8Array }).batch).toBe(batch);
  });

  test("decoded batches are views into the received buffer, not copies", () => {
    const batch = new Uint8Array(1000).fill(5);
    const bytes = encodeFrameBytes(7, produce(batch));
    const d = decodeFrame(bytes.subarray(4));
    expect(d.correlationId).toBe(7);
    if (d.body.case !== "produce") throw new Error("wrong case");
    expect(d.body.value.batch.buffer).toBe(bytes.buffer);
    expect(d.body.value.batch.length).toBe(1000);
  });

  test("non-tail bodies round trip", () => {
    const body: Body = { case: "raft", value: create(RaftBatchSchema, { from: 1, to: 2 }) };
    const d = decodeFrame(encodeFrameBytes(0, body).subarray(4));
    expect(d.correlationId).toBe(0);
    expect(d.body.case).toBe("raft");
  });

  test("peekCorrelationId reads the id without decoding the rest", () => {
    const bytes = encodeFrameBytes(123456789, produce(new Uint8Array(10)));
    expect(peekCorrelationId(bytes.subarray(4))).toBe(123456789);
    expect(peekCorrelationId(new Uint8Array([0xff, 0xff]))).toBeUndefined();
    expect(peekCorrelationId(new Uint8Array([8]))).toBeUndefined();
  });

  test("garbage does not decode", () => {
    expect(() => decodeFrame(new Uint8Array([0xff, 0xff, 0xff]))).toThrow();
  });
});

describe("streaming decoder", () => {
  const frames = [1, 2, 3, 4, 5].map((i) => encodeFrameBytes(i, produce(new Uint8Array(i * 1000).fill(i))));
  const stream = Buffer.concat(frames);

  function feed(chunks: Uint8Array[], max?: number): number[] {
    const d = new FrameDecoder(max);
    const ids: number[] = [];
    for (const c of chunks) d.push(c, (f) => ids.push(decodeFrame(f).correlationId));
    expect(d.pendingBytes).toBe(0);
    return ids;
  }

  test("frames packed into one chunk", () => {
    expect(feed([stream])).toEqual([1, 2, 3, 4, 5]);
  });

  test("frames split at every byte", () => {
    const chunks = Array.from(stream, (_, i) => stream.subarray(i, i + 1));
    expect(feed(chunks)).toEqual([1, 2, 3, 4, 5]);
  });

  test("seeded random splits", () => {
    let seed = 7;
    for (let t = 0; t < 200; t++) {
      const chunks: Uint8Array[] = [];
      for (let pos = 0; pos < stream.length; ) {
        seed = (seed * 48271) % 2147483647;
        const n = 1 + (seed % 5000);
        chunks.push(stream.subarray(pos, pos + n));
        pos += n;
      }
      expect(feed(chunks)).toEqual([1, 2, 3, 4, 5]);
    }
  });

  test("a frame inside one chunk is handed out without a copy", () => {
    const d = new FrameDecoder();
    const seen: Uint8Array[] = [];
    d.push(stream, (f) => seen.push(f));
    expect(seen.every((f) => f.buffer === stream.buffer)).toBe(true);
  });

  test("pendingBytes counts a partial frame, prefix included", () => {
    const d = new FrameDecoder();
    d.push(frames[0]!.subarray(0, 2), () => {});
    expect(d.pendingBytes).toBe(2);
    d.push(frames[0]!.subarray(2, 10), () => {});
    expect(d.pendingBytes).toBe(10);
  });

  const bad = (bytes: number[], max?: number): FrameStreamError => {
    const d = new FrameDecoder(max);
    try {
      d.push(new Uint8Array(bytes), () => {});
    } catch (e) {
      expect(e).toBeInstanceOf(FrameStreamError);
      // The decoder refuses anything after a bad frame.
      expect(() => d.push(new Uint8Array([0, 0, 0, 1, 0]), () => {})).toThrow();
      return e as FrameStreamError;
    }
    throw new Error("expected a stream error");
  };

  test("length 0 is malformed", () => {
    expect(bad([0, 0, 0, 0]).code).toBe(ErrorCode.MALFORMED_FRAME);
  });

  test("a length above the maximum is refused before any allocation, with the id when readable", () => {
    const e = bad([0, 0, 1, 0, 8, 42], 255);
    expect(e.code).toBe(ErrorCode.FRAME_TOO_LARGE);
    expect(e.correlationId).toBe(42);
    const huge = bad([0xff, 0xff, 0xff, 0xff]);
    expect(huge.code).toBe(ErrorCode.FRAME_TOO_LARGE);
    expect(huge.correlationId).toBeUndefined();
  });

  test("max frame bytes is validated", () => {
    expect(() => new FrameDecoder(0)).toThrow();
    expect(() => new FrameDecoder(2 ** 32)).toThrow();
  });
});
