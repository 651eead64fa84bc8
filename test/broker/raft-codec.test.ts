import { describe, expect, test } from "bun:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { decodeRaftBatch, decodeRaftFrame, encodeRaftBatch, encodeRaftFrame, type GroupMessage } from "../../src/broker/raft-codec";
import { FrameSchema } from "../../src/proto/goulette_pb";
import { Prng } from "../../src/raft/prng";
import { EntryType, MessageType, type Message } from "../../src/raft/types";
import { decodeFrame, frameBytes, LENGTH_PREFIX_BYTES } from "../../src/wire";

function msg(over: Partial<Message>): Message {
  return { type: MessageType.Append, from: 1, to: 2, term: 3, logTerm: 0, index: 0, commit: 0, reject: false, rejectHint: 0, hintTerm: 0, entries: [], ...over };
}

function roundTrip(msgs: GroupMessage[]): GroupMessage[] {
  const f = encodeRaftFrame(1, 2, msgs);
  const bytes = frameBytes(f);
  expect(bytes.length).toBe(f.byteLength);
  expect(new DataView(bytes.buffer, bytes.byteOffset).getUint32(0)).toBe(bytes.length - LENGTH_PREFIX_BYTES);
  const decoded = decodeFrame(bytes.subarray(LENGTH_PREFIX_BYTES));
  expect(decoded.correlationId).toBe(0);
  if (decoded.body.case !== "raft") throw new Error(`decoded ${decoded.body.case}`);
  return decodeRaftBatch(decoded.body.value);
}

const sortKey = (m: GroupMessage) => `${m.group}/${m.msg.type}/${m.msg.index}`;

describe("hand-encoded Raft frames", () => {
  test("the generated decoder reads back every message, entry and heartbeat, data byte for byte", () => {
    const big = new Uint8Array(300_000).map((_, i) => i % 251);
    const msgs: GroupMessage[] = [
      { group: 7, msg: msg({ index: 41, logTerm: 2, commit: 40, entries: [
        { term: 3, index: 42, type: EntryType.Normal, data: big },
        { term: 3, index: 43, type: EntryType.Noop, data: new Uint8Array(0) },
        { term: 3, index: 44, type: EntryType.ConfChange, data: new Uint8Array([1, 2, 3]) },
      ] }) },
      { group: 9, msg: msg({ type: MessageType.Heartbeat, commit: 12 }) },
      { group: 10, msg: msg({ type: MessageType.Heartbeat, commit: 13, quiesce: true }) },
      { group: 13, msg: msg({ type: MessageType.Heartbeat, index: 3, commit: 13, quiesce: true }) }, // not a plain heartbeat
      { group: 2 ** 40, msg: msg({ type: MessageType.AppendResponse, index: 2 ** 45, reject: true, rejectHint: 7, hintTerm: 2 }) },
      { group: 11, msg: msg({ index: 5, logTerm: 1, entries: [{ term: 2 ** 33, index: 2 ** 50, type: EntryType.Normal, data: new Uint8Array([9]) }] }) },
      { group: 12, msg: msg({ type: MessageType.Vote, index: 5, logTerm: 1, context: new Uint8Array([7]) }) },
    ];
    const got = roundTrip(msgs).sort((a, b) => sortKey(a).localeCompare(sortKey(b)));
    const want = [...msgs].sort((a, b) => sortKey(a).localeCompare(sortKey(b)));
    expect(got.length).toBe(want.length);
    for (let i = 0; i < want.length; i++) {
      const g = got[i]!;
      const w = want[i]!;
      expect(g.group).toBe(w.group);
      expect({ ...g.msg, entries: [], context: undefined }).toEqual({ ...w.msg, entries: [], context: undefined });
      expect(g.msg.context ? [...g.msg.context] : undefined).toEqual(w.msg.context ? [...w.msg.context] : undefined);
      expect(g.msg.entries.length).toBe(w.msg.entries.length);
      g.msg.entries.forEach((e, j) => {
        const we = w.msg.entries[j]!;
        expect([e.term, e.index, e.type]).toEqual([we.term, we.index, we.type]);
        expect(Bun.hash.crc32(e.data)).toBe(Bun.hash.crc32(we.data));
        expect(e.data.length).toBe(we.data.length);
      });
    }
  });

  test("messages keep their order: an empty Append after one with entries still comes after it", () => {
    // The leader's commit update names the entries just sent as its previous index; read first, the
    // follower would reject it (its log does not reach that index yet) and the leader would re-send.
    const entry = (index: number) => ({ term: 3, index, type: EntryType.Normal, data: new Uint8Array(20_000).fill(index) });
    const msgs: GroupMessage[] = [
      { group: 1, msg: msg({ index: 4, logTerm: 3, commit: 4, entries: [entry(5)] }) },
      { group: 1, msg: msg({ index: 5, logTerm: 3, commit: 5 }) },
      { group: 2, msg: msg({ type: MessageType.AppendResponse, index: 9 }) },
      { group: 9, msg: msg({ type: MessageType.Heartbeat, commit: 12 }) },
      { group: 3, msg: msg({ index: 7, logTerm: 3, commit: 6, entries: [entry(8), entry(9)] }) },
      { group: 4, msg: msg({ type: MessageType.Vote, index: 2, logTerm: 1 }) },
      { group: 3, msg: msg({ index: 9, logTerm: 3, commit: 9 }) },
      { group: 1, msg: msg({ index: 5, logTerm: 3, commit: 5, entries: [entry(6)] }) },
    ];
    const got = roundTrip(msgs).filter((m) => m.msg.type !== MessageType.Heartbeat);
    const want = msgs.filter((m) => m.msg.type !== MessageType.Heartbeat);
    expect(got.map((m) => [m.group, m.msg.type, m.msg.index, m.msg.entries.length])).toEqual(
      want.map((m) => [m.group, m.msg.type, m.msg.index, m.msg.entries.length]),
    );
    expect(got[0]!.msg.entries[0]!.data[0]).toBe(5);
    expect(got[got.length - 1]!.msg.entries[0]!.data[0]).toBe(6);
  });

  test("entry data is handed over as its own piece, not copied into the frame head", () => {
    const data = new Uint8Array(100_000).fill(5);
    const f = encodeRaftFrame(1, 2, [{ group: 1, msg: msg({ index: 1, logTerm: 1, entries: [{ term: 1, index: 2, type: EntryType.Normal, data }] }) }]);
    expect(f.more?.some((p) => p === data)).toBe(true);
    expect(f.head.length).toBeLessThan(100);
  });

  test("the frame is byte for byte what the generated encoder writes, for any mix of messages", () => {
    const rng = new Prng(20261127);
    for (let round = 0; round < 300; round++) {
      const msgs = randomMessages(rng);
      const from = rng.int(3);
      const to = rng.int(3);
      const generated = toBinary(FrameSchema, create(FrameSchema, { body: { case: "raft", value: encodeRaftBatch(from, to, msgs) } }));
      const hand = frameBytes(encodeRaftFrame(from, to, msgs)).subarray(LENGTH_PREFIX_BYTES);
      expect(Buffer.from(hand).toString("hex")).toBe(Buffer.from(generated).toString("hex"));
    }
  });
});

describe("hand-decoded Raft frames", () => {
  /** What the generated decoder makes of a frame, or the error it throws. */
  function generic(bytes: Uint8Array): { from: number; messages: GroupMessage[] } | Error {
    try {
      const f = decodeFrame(bytes);
      if (f.body.case !== "raft") return new Error(`not raft: ${f.body.case}`);
      return { from: f.body.value.from, messages: decodeRaftBatch(f.body.value) };
    } catch (e) {
      return e as Error;
    }
  }

  test("reads every frame the encoder writes as the generated decoder does; a snapshot's frame is left to it", () => {
    const rng = new Prng(777);
    let read = 0;
    for (let round = 0; round < 300; round++) {
      const msgs = randomMessages(rng);
      const bytes = frameBytes(encodeRaftFrame(1 + rng.int(3), 1 + rng.int(3), msgs)).subarray(LENGTH_PREFIX_BYTES);
      const fast = decodeRaftFrame(bytes);
      if (msgs.some((m) => m.msg.snapshot !== undefined)) {
        expect(fast).toBeUndefined();
        continue;
      }
      expect(fast).toEqual(generic(bytes) as { from: number; messages: GroupMessage[] });
      read++;
    }
    expect(read).toBeGreaterThan(200);
  });

  test("a damaged frame is either left to the generated decoder or read exactly as it reads it", () => {
    const rng = new Prng(4242);
    let taken = 0;
    let left = 0;
    for (let round = 0; round < 3000; round++) {
      const msgs = randomMessages(rng).filter((m) => m.msg.snapshot === undefined);
      const good = frameBytes(encodeRaftFrame(1, 2, msgs)).subarray(LENGTH_PREFIX_BYTES);
      let bytes = Uint8Array.from(good);
      const damage = rng.int(4);
      if (damage === 0 && bytes.length > 0) {
        const at = rng.int(bytes.length);
        bytes[at] = bytes[at]! ^ (1 << rng.int(8));
      }
      else if (damage === 1) bytes = bytes.subarray(0, rng.int(bytes.length + 1));
      else if (damage === 2) for (let k = 0; k < 3; k++) bytes[rng.int(bytes.length)] = rng.int(256);
      else {
        // A field the decoder does not know, or one with a wrong wire type, spliced in after the batch's tag.
        const extra = [[(20 << 3) | 0, 5], [(1 << 3) | 2, 0], [(7 << 3) | 5, 1, 2, 3, 4], [0, 1]][rng.int(4)]!;
        const at = 2 + rng.int(Math.max(1, bytes.length - 2));
        bytes = Uint8Array.from([...bytes.subarray(0, at), ...extra, ...bytes.subarray(at)]);
      }
      const fast = decodeRaftFrame(bytes);
      if (fast === undefined) {
        left++;
        continue;
      }
      const g = generic(bytes);
      expect(g).not.toBeInstanceOf(Error);
      expect(fast).toEqual(g as { from: number; messages: GroupMessage[] });
      taken++;
    }
    // Both outcomes happen (a flipped bit in a value still decodes; a cut frame does not).
    expect(taken).toBeGreaterThan(100);
    expect(left).toBeGreaterThan(100);
  });

  test("a frame with a correlation id or another field beside the batch is left to the generated decoder", () => {
    const batch = encodeRaftBatch(1, 2, [{ group: 3, msg: msg({ type: MessageType.Heartbeat, commit: 4 }) }]);
    const withId = toBinary(FrameSchema, create(FrameSchema, { correlationId: 7n, body: { case: "raft", value: batch } }));
    expect(decodeRaftFrame(withId)).toBeUndefined();
    const plain = toBinary(FrameSchema, create(FrameSchema, { body: { case: "raft", value: batch } }));
    expect(decodeRaftFrame(plain)).toEqual(generic(plain) as { from: number; messages: GroupMessage[] });
  });
});

/** A random mix of Raft messages: every type, field and size the encoders must handle. */
function randomMessages(rng: Prng): GroupMessage[] {
  const num = () => [0, 1, 127, 128, 300, 2 ** 31, 2 ** 32 + 5, 2 ** 53 - 1][rng.int(8)]!;
  const bytes = (max: number) => new Uint8Array(rng.int(max + 1)).map(() => rng.int(256));
  const types = [MessageType.Append, MessageType.AppendResponse, MessageType.Heartbeat, MessageType.HeartbeatResponse, MessageType.Vote, MessageType.PreVoteResponse, MessageType.Snapshot, MessageType.TimeoutNow];
  return Array.from({ length: rng.int(6) }, () => {
    const type = types[rng.int(types.length)]!;
    const plain = (type === MessageType.Heartbeat || type === MessageType.HeartbeatResponse) && rng.int(2) === 0;
    const m = msg({
      type,
      from: rng.int(5),
      to: rng.int(5),
      term: num(),
      commit: num(),
      context: rng.int(3) === 0 ? bytes(8) : undefined,
      quiesce: rng.int(4) === 0 ? true : undefined,
      ...(plain
        ? {}
        : {
            logTerm: num(),
            index: num(),
            reject: rng.int(2) === 0,
            rejectHint: num(),
            hintTerm: num(),
            entries: Array.from({ length: rng.int(3) }, () => ({ term: num(), index: num(), type: [EntryType.Normal, EntryType.Noop, EntryType.ConfChange][rng.int(3)]!, data: bytes(300) })),
            snapshot: type === MessageType.Snapshot ? { index: num(), term: num(), conf: { voters: [1, 2, 3], learners: [rng.int(9)] }, data: bytes(20) } : undefined,
          }),
    });
    return { group: num(), msg: m };
  });
}
