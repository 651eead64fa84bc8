// What the broker sends its peers for one pump round must be readable by a peer with the same frame limit,
// however many busy partitions the two share, and arrive in the order it was queued.
import { expect, test } from "bun:test";
import { PeerTransport, type PeerPool } from "../../src/broker/peers";
import { decodeRaftBatch } from "../../src/broker/raft-codec";
import { EntryType, MessageType, type Message } from "../../src/raft/types";
import { FrameDecoder, decodeFrame, frameBytes, type EncodedFrame } from "../../src/wire";

function append(group: number, index: number, bytes: number): Message {
  return {
    type: MessageType.Append, from: 1, to: 2, term: 3, logTerm: 3, index: index - 1, commit: index - 1,
    reject: false, rejectHint: 0, hintTerm: 0,
    entries: [{ term: 3, index, type: EntryType.Normal, data: new Uint8Array(bytes).fill(group) }],
  };
}

class CapturingPool implements PeerPool {
  readonly frames: EncodedFrame[] = [];
  flushes = 0;
  get(_address: string) {
    return { sendEncoded: (f: EncodedFrame) => void this.frames.push(f), flushNow: () => void this.flushes++ };
  }
}

/** Feeds the frames to a decoder with the given limit, as the peer would; returns (group, index) in order. */
function receive(frames: EncodedFrame[], maxFrameBytes: number): [number, number][] {
  const decoder = new FrameDecoder(maxFrameBytes);
  const got: [number, number][] = [];
  for (const f of frames) {
    decoder.push(frameBytes(f), (body) => {
      const d = decodeFrame(body);
      if (d.body.case !== "raft") throw new Error(`got ${d.body.case}`);
      for (const { group, msg } of decodeRaftBatch(d.body.value)) {
        expect(msg.entries[0]!.data.every((b) => b === group % 256)).toBe(true);
        got.push([group, msg.entries[0]!.index]);
      }
    });
  }
  return got;
}

test("a round with more Appends for a peer than one frame holds leaves as several frames, in order", () => {
  const limit = 4 * 1024 * 1024;
  const pool = new CapturingPool();
  const peers = new PeerTransport(1, pool, limit);
  peers.setAddress(2, "127.0.0.1:2");
  // Twelve busy partitions with a 1 MiB batch each: 12 MiB for one peer in one round.
  const sent: [number, number][] = [];
  for (let g = 1; g <= 12; g++) {
    peers.queue(g, append(g, 10 + g, 1024 * 1024));
    sent.push([g, 10 + g]);
  }
  peers.flush(true);
  expect(pool.frames.length).toBeGreaterThanOrEqual(3);
  for (const f of pool.frames) expect(f.byteLength).toBeLessThanOrEqual(limit);
  expect(pool.flushes).toBe(1);
  // The peer's decoder (same limit) takes every frame; one 12 MiB frame would fail its stream.
  expect(receive(pool.frames, limit)).toEqual(sent);
});

test("a single message above the budget still leaves, alone in its frame; small rounds stay one frame", () => {
  const limit = 4 * 1024 * 1024;
  const pool = new CapturingPool();
  const peers = new PeerTransport(1, pool, limit);
  peers.setAddress(2, "127.0.0.1:2");
  peers.queue(1, append(1, 5, 100));
  peers.queue(2, append(2, 6, limit - 64 * 1024 - 100)); // above the budget, within the limit
  peers.queue(3, append(3, 7, 100));
  peers.flush();
  expect(pool.frames.length).toBe(3);
  expect(receive(pool.frames, limit)).toEqual([[1, 5], [2, 6], [3, 7]]);
  pool.frames.length = 0;
  for (let g = 1; g <= 50; g++) peers.queue(g, append(g, 100, 1000));
  peers.flush();
  expect(pool.frames.length).toBe(1);
  expect(receive(pool.frames, limit).length).toBe(50);
});

test("many small entries: the size estimate stays an upper bound, every frame fits", () => {
  const limit = 256 * 1024;
  const pool = new CapturingPool();
  const peers = new PeerTransport(1, pool, limit);
  peers.setAddress(2, "127.0.0.1:2");
  const sent: [number, number][] = [];
  for (let g = 1; g <= 40; g++) {
    // Large terms and indexes: every varint near its longest.
    const base = 2 ** 50 + g * 10_000;
    const m = append(g, base, 0);
    m.term = 2 ** 40;
    m.entries = Array.from({ length: 2_000 }, (_, i) => ({ term: 2 ** 40, index: base + i, type: EntryType.Normal, data: new Uint8Array(8).fill(g) }));
    peers.queue(g, m);
    sent.push([g, base]);
  }
  peers.flush();
  expect(pool.frames.length).toBeGreaterThan(1);
  for (const f of pool.frames) expect(f.byteLength).toBeLessThanOrEqual(limit);
  expect(receive(pool.frames, limit)).toEqual(sent);
});
