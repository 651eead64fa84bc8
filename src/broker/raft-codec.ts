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
// grows by doubling, and then again into the frame. Here the small parts are encoded by hand and each
// entry's data is handed to the socket as its own piece. The result is the protobuf Frame the generated
// encoder would write, byte for byte (test/broker/raft-codec.test.ts checks it).

// Tags: (field number << 3) | wire type (0 varint, 2 length-delimited), all below 16 so one byte each.
const FRAME_RAFT_TAG = (6 << 3) | 2; // Frame.raft
const BATCH_FROM_TAG = (1 << 3) | 0; // RaftBatch
const BATCH_TO_TAG = (2 << 3) | 0;
const BATCH_MESSAGES_TAG = (3 << 3) | 2;
const BATCH_HEARTBEATS_TAG = (4 << 3) | 2;
const MSG_GROUP_TAG = (1 << 3) | 0; // RaftMessage
const MSG_TYPE_TAG = (2 << 3) | 0;
const MSG_FROM_TAG = (3 << 3) | 0;
const MSG_TO_TAG = (4 << 3) | 0;
const MSG_TERM_TAG = (5 << 3) | 0;
const MSG_LOG_TERM_TAG = (6 << 3) | 0;
const MSG_INDEX_TAG = (7 << 3) | 0;
const MSG_COMMIT_TAG = (8 << 3) | 0;
const MSG_REJECT_TAG = (9 << 3) | 0;
const MSG_REJECT_HINT_TAG = (10 << 3) | 0;
const MSG_HINT_TERM_TAG = (11 << 3) | 0;
const MSG_SNAPSHOT_TAG = (12 << 3) | 2;
const MSG_CONTEXT_TAG = (13 << 3) | 2;
const MESSAGE_ENTRIES_TAG = (14 << 3) | 2;
const MSG_QUIESCE_TAG = (15 << 3) | 0;
const ENTRY_TERM_TAG = (1 << 3) | 0; // RaftEntry
const ENTRY_INDEX_TAG = (2 << 3) | 0;
const ENTRY_TYPE_TAG = (3 << 3) | 0;
const ENTRY_DATA_TAG = (4 << 3) | 2;
const HB_GROUP_TAG = (1 << 3) | 0; // GroupHeartbeat
const HB_TERM_TAG = (2 << 3) | 0;
const HB_COMMIT_TAG = (3 << 3) | 0;
const HB_RESPONSE_TAG = (4 << 3) | 0;
const HB_CONTEXT_TAG = (5 << 3) | 2;
const HB_QUIESCE_TAG = (6 << 3) | 0;

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

  /** A varint field; nothing for zero (proto3 leaves defaults out). */
  varintField(tag: number, n: number): void {
    if (n === 0) return;
    this.byte(tag);
    this.varint(n);
  }

  /** A small bytes field, copied into the head; nothing when empty. */
  bytesField(tag: number, b: Uint8Array | undefined): void {
    if (b === undefined || b.length === 0) return;
    this.byte(tag);
    this.varint(b.length);
    this.bytes(b);
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
  let n = varintField(e.term) + varintField(e.index) + varintField(e.type);
  if (e.data.length > 0) n += 1 + varintSize(e.data.length);
  return n;
}

/**
 * Everything one broker sends another in one pump round, as one frame, with no copy of entry data, and
 * written by hand field by field: the generated encoder (reflection over the schema, a BigInt per
 * number) took a seventh of a broker's CPU at 1,000 partitions under load. Bytes are the generated
 * encoder's own (test/broker/raft-codec.test.ts compares them): from, to, the messages, then the heartbeats.
 * Messages keep their order: a group's empty Append (a commit update) that follows an Append with entries
 * names those entries as its previous index, so a follower reading it first would reject it and send the
 * leader back to probing, which re-sends the entries one round trip later. Plain heartbeats travel in
 * their own field; their place among the messages does not matter (they only carry a commit the follower
 * already matches).
 */
export function encodeRaftFrame(from: NodeId, to: NodeId, msgs: GroupMessage[]): EncodedFrame {
  // Sizes first (each message's length precedes it), then one pass that writes. Which messages are plain
  // heartbeats is decided once, here.
  const sizes = new Array<number>(msgs.length);
  const plain = new Array<boolean>(msgs.length);
  const snapshots = new Array<Uint8Array | undefined>(msgs.length);
  let batchSize = varintField(from) + varintField(to);
  for (let i = 0; i < msgs.length; i++) {
    const { group, msg } = msgs[i]!;
    let n: number;
    plain[i] = isPlainHeartbeat(msg);
    if (plain[i]) {
      n = heartbeatSize(group, msg);
    } else {
      // A snapshot's meta (rare: a replica far behind) goes through the generated encoder.
      if (msg.snapshot) snapshots[i] = toBinary(SnapshotMetaSchema, create(SnapshotMetaSchema, encodeSnapshotMeta(msg.snapshot)));
      n = messageSize(group, msg, snapshots[i]);
    }
    sizes[i] = n;
    batchSize += 1 + varintSize(n) + n;
  }
  const frameSize = 1 + varintSize(batchSize) + batchSize;

  const w = new HeadWriter();
  w.uint32be(frameSize);
  w.byte(FRAME_RAFT_TAG);
  w.varint(batchSize);
  w.varintField(BATCH_FROM_TAG, from);
  w.varintField(BATCH_TO_TAG, to);
  for (let i = 0; i < msgs.length; i++) {
    if (plain[i]) continue;
    const { group, msg } = msgs[i]!;
    w.byte(BATCH_MESSAGES_TAG);
    w.varint(sizes[i]!);
    writeMessage(w, group, msg, snapshots[i]);
  }
  for (let i = 0; i < msgs.length; i++) {
    if (!plain[i]) continue;
    const { group, msg } = msgs[i]!;
    w.byte(BATCH_HEARTBEATS_TAG);
    w.varint(sizes[i]!);
    writeHeartbeat(w, group, msg);
  }
  w.flushHead();
  const [head, ...more] = w.pieces;
  return { head: head!, tail: undefined, more, byteLength: LENGTH_PREFIX_BYTES + frameSize };
}

/** A varint field's bytes (tag included; every tag here is one byte), or 0 for proto3's omitted zero. */
function varintField(n: number): number {
  return n === 0 ? 0 : 1 + varintSize(n);
}

function bytesField(b: Uint8Array | undefined): number {
  return b === undefined || b.length === 0 ? 0 : 1 + varintSize(b.length) + b.length;
}

function heartbeatSize(group: number, m: Message): number {
  return (
    varintField(group) +
    varintField(m.term) +
    varintField(m.commit) +
    (m.type === MessageType.HeartbeatResponse ? 2 : 0) +
    bytesField(m.context) +
    (m.quiesce === true ? 2 : 0)
  );
}

/** A GroupHeartbeat's fields in field order (heartbeatSize counts them). */
function writeHeartbeat(w: HeadWriter, group: number, m: Message): void {
  w.varintField(HB_GROUP_TAG, group);
  w.varintField(HB_TERM_TAG, m.term);
  w.varintField(HB_COMMIT_TAG, m.commit);
  w.varintField(HB_RESPONSE_TAG, m.type === MessageType.HeartbeatResponse ? 1 : 0);
  w.bytesField(HB_CONTEXT_TAG, m.context);
  w.varintField(HB_QUIESCE_TAG, m.quiesce === true ? 1 : 0);
}

function messageSize(group: number, m: Message, snapshot: Uint8Array | undefined): number {
  let n =
    varintField(group) +
    varintField(m.type) +
    varintField(m.from) +
    varintField(m.to) +
    varintField(m.term) +
    varintField(m.logTerm) +
    varintField(m.index) +
    varintField(m.commit) +
    (m.reject ? 2 : 0) +
    varintField(m.rejectHint) +
    varintField(m.hintTerm) +
    bytesField(snapshot) +
    bytesField(m.context) +
    (m.quiesce === true ? 2 : 0);
  for (const e of m.entries) {
    const inner = entryHeadSize(e) + e.data.length;
    n += 1 + varintSize(inner) + inner;
  }
  return n;
}

/** A RaftMessage's fields in field order, as the generated encoder writes them; entry data uncopied. */
function writeMessage(w: HeadWriter, group: number, m: Message, snapshot: Uint8Array | undefined): void {
  w.varintField(MSG_GROUP_TAG, group);
  w.varintField(MSG_TYPE_TAG, m.type);
  w.varintField(MSG_FROM_TAG, m.from);
  w.varintField(MSG_TO_TAG, m.to);
  w.varintField(MSG_TERM_TAG, m.term);
  w.varintField(MSG_LOG_TERM_TAG, m.logTerm);
  w.varintField(MSG_INDEX_TAG, m.index);
  w.varintField(MSG_COMMIT_TAG, m.commit);
  w.varintField(MSG_REJECT_TAG, m.reject ? 1 : 0);
  w.varintField(MSG_REJECT_HINT_TAG, m.rejectHint);
  w.varintField(MSG_HINT_TERM_TAG, m.hintTerm);
  w.bytesField(MSG_SNAPSHOT_TAG, snapshot);
  w.bytesField(MSG_CONTEXT_TAG, m.context);
  for (const e of m.entries) {
    w.byte(MESSAGE_ENTRIES_TAG);
    w.varint(entryHeadSize(e) + e.data.length);
    w.varintField(ENTRY_TERM_TAG, e.term);
    w.varintField(ENTRY_INDEX_TAG, e.index);
    w.varintField(ENTRY_TYPE_TAG, e.type);
    if (e.data.length > 0) {
      w.byte(ENTRY_DATA_TAG);
      w.varint(e.data.length);
      w.data(e.data);
    }
  }
  w.varintField(MSG_QUIESCE_TAG, m.quiesce === true ? 1 : 0);
}

// ---- the frame, decoded by hand -----------------------------------------------------------------------
// The generated decoder builds a message object and a BigInt per field, which at 1,000 partitions under
// load (thousands of small messages a second) was most of what decoding cost. This reads the usual
// shape of a Raft frame, the batch as the frame's only field, straight into the core's messages; anything
// else (a snapshot's meta, unknown wire types, a malformed or truncated field, a number above 2^53)
// returns undefined and the frame goes through the generated decoder as before, so every frame the fast
// path accepts decodes there to the same messages (test/broker/raft-codec.test.ts checks both, on random
// and on damaged frames).

/** A read position in a frame; `fail` is set instead of throwing, so a bad frame costs no exception. */
class FieldReader {
  fail = false;
  constructor(
    readonly b: Uint8Array,
    public pos: number,
    readonly end: number,
  ) {}

  varint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      if (this.pos >= this.end) break;
      const byte = this.b[this.pos++]!;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) {
        if (value > Number.MAX_SAFE_INTEGER) break;
        return value;
      }
      scale *= 0x80;
    }
    this.fail = true; // truncated, or wider than 2^56: left to the generated decoder
    return 0;
  }

  /** A length-delimited field's bounds, after its tag. */
  length(): number {
    const n = this.varint();
    if (this.fail || n > this.end - this.pos) {
      this.fail = true;
      return 0;
    }
    return n;
  }

  bytes(): Uint8Array {
    const n = this.length();
    const out = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /**
   * Skips a field unknown to a message of `known` fields (numbered 1..known); false for field 0 or a
   * known one (its expected wire type was read by the caller, so this one has another).
   */
  skipOther(tag: number, known: number): boolean {
    const field = tag >>> 3;
    if (field === 0 || field <= known) return false;
    this.skip(tag & 7);
    return !this.fail;
  }

  /** Skips a field (wire types 0, 1, 2, 5 only). */
  private skip(wireType: number): void {
    if (wireType === 0) this.varint();
    else if (wireType === 1) this.advance(8);
    else if (wireType === 2) this.advance(this.length());
    else if (wireType === 5) this.advance(4);
    else this.fail = true;
  }

  private advance(n: number): void {
    if (n > this.end - this.pos) this.fail = true;
    else this.pos += n;
  }
}

/** The messages of a frame that holds only a RaftBatch, as decodeRaftBatch gives them; undefined otherwise. */
export function decodeRaftFrame(frame: Uint8Array): { from: NodeId; messages: GroupMessage[] } | undefined {
  if (frame.length < 2 || frame[0] !== FRAME_RAFT_TAG) return undefined;
  const top = new FieldReader(frame, 1, frame.length);
  const size = top.length();
  if (top.fail || top.pos + size !== frame.length) return undefined;
  const r = new FieldReader(frame, top.pos, frame.length);
  let from = 0;
  let to = 0;
  const heartbeats: [number, number][] = []; // where each is: read once from and to are known
  const messages: GroupMessage[] = [];
  while (r.pos < r.end && !r.fail) {
    const tag = r.varint();
    if (tag === BATCH_FROM_TAG) from = r.varint();
    else if (tag === BATCH_TO_TAG) to = r.varint();
    else if (tag === BATCH_MESSAGES_TAG) {
      const n = r.length();
      if (r.fail) break;
      const m = readMessage(new FieldReader(frame, r.pos, r.pos + n));
      if (m === undefined) return undefined;
      messages.push(m);
      r.pos += n;
    } else if (tag === BATCH_HEARTBEATS_TAG) {
      const n = r.length();
      if (r.fail) break;
      heartbeats.push([r.pos, r.pos + n]);
      r.pos += n;
    } else if (!r.skipOther(tag, BATCH_FIELDS)) return undefined;
  }
  if (r.fail || from > 0xffffffff || to > 0xffffffff) return undefined;
  const out: GroupMessage[] = [];
  for (const [start, end] of heartbeats) {
    const h = readHeartbeat(new FieldReader(frame, start, end), from, to);
    if (h === undefined) return undefined;
    out.push(h);
  }
  for (const m of messages) out.push(m);
  return { from, messages: out };
}

function readHeartbeat(r: FieldReader, from: NodeId, to: NodeId): GroupMessage | undefined {
  let group = 0;
  let term = 0;
  let commit = 0;
  let response = false;
  let context: Uint8Array | undefined;
  let quiesce = false;
  while (r.pos < r.end && !r.fail) {
    const tag = r.varint();
    if (tag === HB_GROUP_TAG) group = r.varint();
    else if (tag === HB_TERM_TAG) term = r.varint();
    else if (tag === HB_COMMIT_TAG) commit = r.varint();
    else if (tag === HB_RESPONSE_TAG) response = r.varint() !== 0;
    else if (tag === HB_CONTEXT_TAG) context = r.bytes();
    else if (tag === HB_QUIESCE_TAG) quiesce = r.varint() !== 0;
    else if (!r.skipOther(tag, HEARTBEAT_FIELDS)) return undefined;
  }
  if (r.fail) return undefined;
  return {
    group,
    msg: {
      type: response ? MessageType.HeartbeatResponse : MessageType.Heartbeat,
      from,
      to,
      term,
      logTerm: 0,
      index: 0,
      commit,
      reject: false,
      rejectHint: 0,
      hintTerm: 0,
      entries: [],
      context: context?.length ? context : undefined,
      ...(quiesce ? { quiesce: true } : {}),
    },
  };
}

function readMessage(r: FieldReader): GroupMessage | undefined {
  let group = 0;
  const msg: Message = { type: 0 as MessageType, from: 0, to: 0, term: 0, logTerm: 0, index: 0, commit: 0, reject: false, rejectHint: 0, hintTerm: 0, entries: [], context: undefined };
  let quiesce = false;
  while (r.pos < r.end && !r.fail) {
    const tag = r.varint();
    switch (tag) {
      case MSG_GROUP_TAG: group = r.varint(); break;
      case MSG_TYPE_TAG: msg.type = r.varint() as MessageType; break;
      case MSG_FROM_TAG: msg.from = r.varint(); break;
      case MSG_TO_TAG: msg.to = r.varint(); break;
      case MSG_TERM_TAG: msg.term = r.varint(); break;
      case MSG_LOG_TERM_TAG: msg.logTerm = r.varint(); break;
      case MSG_INDEX_TAG: msg.index = r.varint(); break;
      case MSG_COMMIT_TAG: msg.commit = r.varint(); break;
      case MSG_REJECT_TAG: msg.reject = r.varint() !== 0; break;
      case MSG_REJECT_HINT_TAG: msg.rejectHint = r.varint(); break;
      case MSG_HINT_TERM_TAG: msg.hintTerm = r.varint(); break;
      case MSG_CONTEXT_TAG: {
        const c = r.bytes();
        msg.context = c.length > 0 ? c : undefined;
        break;
      }
      case MESSAGE_ENTRIES_TAG: {
        const n = r.length();
        if (r.fail) return undefined;
        const e = readEntry(new FieldReader(r.b, r.pos, r.pos + n));
        if (e === undefined) return undefined;
        msg.entries.push(e);
        r.pos += n;
        break;
      }
      case MSG_QUIESCE_TAG: quiesce = r.varint() !== 0; break;
      default:
        // A snapshot's meta (field 12) too: the generated decoder's job.
        if (!r.skipOther(tag, MESSAGE_FIELDS)) return undefined;
    }
  }
  if (r.fail || msg.from > 0xffffffff || msg.to > 0xffffffff || msg.type > 0x7fffffff) return undefined;
  if (quiesce) msg.quiesce = true;
  return { group, msg };
}

function readEntry(r: FieldReader): Entry | undefined {
  const e: Entry = { term: 0, index: 0, type: 0 as EntryType, data: EMPTY };
  while (r.pos < r.end && !r.fail) {
    const tag = r.varint();
    if (tag === ENTRY_TERM_TAG) e.term = r.varint();
    else if (tag === ENTRY_INDEX_TAG) e.index = r.varint();
    else if (tag === ENTRY_TYPE_TAG) e.type = r.varint() as EntryType;
    else if (tag === ENTRY_DATA_TAG) e.data = r.bytes();
    else if (!r.skipOther(tag, ENTRY_FIELDS)) return undefined;
  }
  if (r.fail || e.type > 0x7fffffff) return undefined;
  return e;
}

/** Fields 1..N of each message: a tag naming one of them that no case above read has the wrong wire type. */
const BATCH_FIELDS = 4;
const HEARTBEAT_FIELDS = 6;
const MESSAGE_FIELDS = 15;
const ENTRY_FIELDS = 4;
