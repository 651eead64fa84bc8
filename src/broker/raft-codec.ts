// Raft messages between brokers: the core's plain objects <-> the wire's RaftBatch. Everything one broker
// sends another in one pump cycle travels as ONE RaftBatch frame, and heartbeats (the bulk of idle traffic
// with many partitions) shrink to a GroupHeartbeat of four fields each.
import { create, toBinary } from "@bufbuild/protobuf";
import {
  EntryType as WireEntryType,
  GroupHeartbeatSchema,
  RaftBatchSchema,
  RaftEntrySchema,
  RaftMessageSchema,
  SnapshotMetaSchema,
  type RaftBatch,
  type RaftMessage,
} from "../proto/goulette_pb";
import { MessageType, type Entry, type EntryType, type Message, type NodeId, type SnapshotMeta } from "../raft/types";
import { LENGTH_PREFIX_BYTES, type EncodedFrame } from "../wire";

export interface GroupMessage {
  group: number;
  msg: Message;
}

const EMPTY = new Uint8Array(0);

function isPlainHeartbeat(m: Message): boolean {
  return (
    (m.type === MessageType.Heartbeat || m.type === MessageType.HeartbeatResponse) &&
    m.logTerm === 0 && m.index === 0 && !m.reject && m.rejectHint === 0 && m.hintTerm === 0 &&
    m.entries.length === 0 && m.snapshot === undefined
  );
}

export function encodeRaftBatch(from: NodeId, to: NodeId, msgs: GroupMessage[]): RaftBatch {
  const batch = create(RaftBatchSchema, { from, to });
  for (const { group, msg } of msgs) {
    if (isPlainHeartbeat(msg)) {
      batch.heartbeats.push(
        create(GroupHeartbeatSchema, {
          group: BigInt(group),
          term: BigInt(msg.term),
          commit: BigInt(msg.commit),
          response: msg.type === MessageType.HeartbeatResponse,
          context: msg.context ?? EMPTY,
          quiesce: msg.quiesce === true,
        }),
      );
      continue;
    }
    batch.messages.push(
      create(RaftMessageSchema, {
        group: BigInt(group),
        type: msg.type as number,
        from: msg.from,
        to: msg.to,
        term: BigInt(msg.term),
        logTerm: BigInt(msg.logTerm),
        index: BigInt(msg.index),
        commit: BigInt(msg.commit),
        reject: msg.reject,
        rejectHint: BigInt(msg.rejectHint),
        hintTerm: BigInt(msg.hintTerm),
        context: msg.context ?? EMPTY,
        quiesce: msg.quiesce === true,
        snapshot: msg.snapshot && create(SnapshotMetaSchema, encodeSnapshotMeta(msg.snapshot)),
        entries: msg.entries.map((e) =>
          create(RaftEntrySchema, { term: BigInt(e.term), index: BigInt(e.index), type: e.type as number as WireEntryType, data: e.data }),
        ),
      }),
    );
  }
  return batch;
}

function encodeSnapshotMeta(s: SnapshotMeta) {
  return { index: BigInt(s.index), term: BigInt(s.term), voters: s.conf.voters, learners: s.conf.learners, data: s.data };
}

export function decodeRaftBatch(batch: RaftBatch): GroupMessage[] {
  const out: GroupMessage[] = [];
  for (const h of batch.heartbeats) {
    out.push({
      group: Number(h.group),
      msg: {
        type: h.response ? MessageType.HeartbeatResponse : MessageType.Heartbeat,
        from: batch.from,
        to: batch.to,
        term: Number(h.term),
        logTerm: 0,
        index: 0,
        commit: Number(h.commit),
        reject: false,
        rejectHint: 0,
        hintTerm: 0,
        entries: [],
        context: h.context.length ? h.context : undefined,
        ...(h.quiesce ? { quiesce: true } : {}),
      },
    });
  }
  for (const m of batch.messages) out.push({ group: Number(m.group), msg: decodeRaftMessage(m) });
  return out;
}

function decodeRaftMessage(m: RaftMessage): Message {
  const entries: Entry[] = m.entries.map((e) => ({
    term: Number(e.term),
    index: Number(e.index),
    type: e.type as number as EntryType,
    data: e.data,
  }));
  return {
    type: m.type as number as MessageType,
    from: m.from,
    to: m.to,
    term: Number(m.term),
    logTerm: Number(m.logTerm),
    index: Number(m.index),
    commit: Number(m.commit),
    reject: m.reject,
    rejectHint: Number(m.rejectHint),
    hintTerm: Number(m.hintTerm),
    entries,
    snapshot: m.snapshot && {
      index: Number(m.snapshot.index),
      term: Number(m.snapshot.term),
      conf: { voters: [...m.snapshot.voters], learners: [...m.snapshot.learners] },
      data: m.snapshot.data,
    },
    context: m.context.length ? m.context : undefined,
    ...(m.quiesce ? { quiesce: true } : {}),
  };
}

// ---- the frame, encoded by hand around the entries' data --------------------------------------------
// Entry data (record batches, up to MiBs per Append) would otherwise be copied into a protobuf writer that
// grows by doubling, and then again into the frame. Here the small parts are encoded by the generated code
// or by hand and each entry's data is handed to the socket as its own piece. The result is a valid
// protobuf Frame that the generated decoder reads (test/broker/raft-codec.test.ts checks it).

const FRAME_RAFT_TAG = (6 << 3) | 2; // Frame.raft
const BATCH_MESSAGES_TAG = (3 << 3) | 2; // RaftBatch.messages
const MESSAGE_ENTRIES_TAG = (14 << 3) | 2; // RaftMessage.entries
const ENTRY_TERM_TAG = (1 << 3) | 0;
const ENTRY_INDEX_TAG = (2 << 3) | 0;
const ENTRY_TYPE_TAG = (3 << 3) | 0;
const ENTRY_DATA_TAG = (4 << 3) | 2;

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    size++;
  }
  return size;
}

/** Small parts of the frame, written into one buffer between the data pieces. */
class HeadWriter {
  private buf = new Uint8Array(256);
  private at = 0;
  readonly pieces: Uint8Array[] = [];

  private room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.at + n));
    next.set(this.buf.subarray(0, this.at));
    this.buf = next;
  }

  byte(b: number): void {
    this.room(1);
    this.buf[this.at++] = b;
  }

  varint(n: number): void {
    this.room(10);
    while (n >= 0x80) {
      this.buf[this.at++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    this.buf[this.at++] = n;
  }

  uint32be(n: number): void {
    this.room(4);
    new DataView(this.buf.buffer, this.buf.byteOffset).setUint32(this.at, n);
    this.at += 4;
  }

  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.at);
    this.at += b.length;
  }

  /** Ends the current head piece and puts `data` after it, uncopied. */
  data(d: Uint8Array): void {
    this.flushHead();
    this.pieces.push(d);
  }

  flushHead(): void {
    if (this.at === 0) return;
    this.pieces.push(this.buf.subarray(0, this.at));
    this.buf = new Uint8Array(256);
    this.at = 0;
  }
}

function entryHeadSize(e: Entry): number {
  let n = 1 + varintSize(e.term) + 1 + varintSize(e.index);
  if (e.type !== 0) n += 1 + varintSize(e.type);
  if (e.data.length > 0) n += 1 + varintSize(e.data.length);
  return n;
}

/**
 * Everything one broker sends another in one pump round, as one frame, with no copy of entry data.
 * Messages keep their order: a group's empty Append (a commit update) that follows an Append with entries
 * names those entries as its previous index, so a follower reading it first would reject it and send the
 * leader back to probing, which re-sends the entries one round trip later. Plain heartbeats travel in
 * their own field; their place among the messages does not matter (they only carry a commit the follower
 * already matches).
 */
export function encodeRaftFrame(from: NodeId, to: NodeId, msgs: GroupMessage[]): EncodedFrame {
  // Runs of entry-less messages go through the generated encoder; entries are added by hand.
  const heartbeats: GroupMessage[] = [];
  const runs: (GroupMessage[] | GroupMessage)[] = [];
  for (const m of msgs) {
    if (isPlainHeartbeat(m.msg)) heartbeats.push(m);
    else if (m.msg.entries.length > 0) runs.push(m);
    else {
      const last = runs[runs.length - 1];
      if (Array.isArray(last)) last.push(m);
      else runs.push([m]);
    }
  }
  const small = toBinary(RaftBatchSchema, encodeRaftBatch(from, to, heartbeats));
  // A run encoded as a RaftBatch with from and to left at 0 is just its `messages` fields (proto3 leaves
  // zeros out), so it can be spliced into the frame's batch as it is.
  type Part =
    | { kind: "run"; encoded: Uint8Array }
    | { kind: "entries"; base: Uint8Array; size: number; entrySizes: number[]; entries: Entry[] };
  const parts = runs.map((run): Part => {
    if (Array.isArray(run)) return { kind: "run", encoded: toBinary(RaftBatchSchema, encodeRaftBatch(0, 0, run)) };
    const { group, msg } = run;
    const base = toBinary(RaftMessageSchema, encodeRaftBatch(from, to, [{ group, msg: { ...msg, entries: [] } }]).messages[0]!);
    let size = base.length;
    const entrySizes = msg.entries.map((e) => {
      const inner = entryHeadSize(e) + e.data.length;
      size += 1 + varintSize(inner) + inner;
      return inner;
    });
    return { kind: "entries", base, size, entrySizes, entries: msg.entries };
  });
  let batchSize = small.length;
  for (const p of parts) batchSize += p.kind === "run" ? p.encoded.length : 1 + varintSize(p.size) + p.size;
  const frameSize = 1 + varintSize(batchSize) + batchSize;

  const w = new HeadWriter();
  w.uint32be(frameSize);
  w.byte(FRAME_RAFT_TAG);
  w.varint(batchSize);
  w.bytes(small);
  for (const p of parts) {
    if (p.kind === "run") {
      w.bytes(p.encoded);
      continue;
    }
    w.byte(BATCH_MESSAGES_TAG);
    w.varint(p.size);
    w.bytes(p.base);
    p.entries.forEach((e, i) => {
      w.byte(MESSAGE_ENTRIES_TAG);
      w.varint(p.entrySizes[i]!);
      w.byte(ENTRY_TERM_TAG);
      w.varint(e.term);
      w.byte(ENTRY_INDEX_TAG);
      w.varint(e.index);
      if (e.type !== 0) {
        w.byte(ENTRY_TYPE_TAG);
        w.varint(e.type);
      }
      if (e.data.length > 0) {
        w.byte(ENTRY_DATA_TAG);
        w.varint(e.data.length);
        w.data(e.data);
      }
    });
  }
  w.flushHead();
  const [head, ...more] = w.pieces;
  return { head: head!, tail: undefined, more, byteLength: LENGTH_PREFIX_BYTES + frameSize };
}
