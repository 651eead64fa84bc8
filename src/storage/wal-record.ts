// WAL record layout, little-endian:
//   [length u32: whole record][crc32 u32 of bytes [8, length), seeded with the segment's salt]
//   [group u32][term u64][index u64][type u8][payload]
// Seeding the checksum with the segment sequence makes records left over in a reused file fail to verify.
import type { ConfState, Entry, EntryType, HardState, SnapshotMeta } from "../raft/types";
import type { GrowableBuffer } from "./growable-buffer";

export const RECORD_HEADER_BYTES = 29;
export const RECORD_BYTES_MAX = 256 * 1024 * 1024;
/** Zero bytes written after the last record of every write: a torn write is then told from a clean end. */
export const END_MARKER_BYTES = 8;

export enum RecordType {
  Entry = 1,
  HardState = 2,
  Truncate = 3, // entries with index >= `index` are gone
  Snapshot = 4, // compacted up to `index` (or installed)
  Release = 5, // entries <= `index` are durable elsewhere
  RemoveGroup = 6,
  Seal = 7, // nothing follows in this segment: damage before it is not a torn tail
  Drop = 8, // entries <= `index` were let go although nothing else holds them (see Wal.drop)
}

export interface WalRecord {
  type: RecordType;
  group: number;
  term: number;
  index: number;
  payload: Uint8Array;
}

export function saltForSegment(seq: number): number {
  return seq >>> 0;
}

/** u64 as two u32 halves: avoids a BigInt per field on the recovery path (values stay below 2^53). */
export function readU64(view: DataView, at: number): number {
  return view.getUint32(at, true) + view.getUint32(at + 4, true) * 0x1_0000_0000;
}

function writeU64(view: DataView, at: number, value: number): void {
  view.setUint32(at, value >>> 0, true);
  view.setUint32(at + 4, Math.floor(value / 0x1_0000_0000), true);
}

function writeHeader(buf: GrowableBuffer, at: number, len: number, group: number, term: number, index: number, type: RecordType): void {
  const v = buf.view;
  v.setUint32(at, len, true);
  v.setUint32(at + 8, group, true);
  writeU64(v, at + 12, term);
  writeU64(v, at + 20, index);
  v.setUint8(at + 28, type);
}

function seal(buf: GrowableBuffer, at: number, len: number, salt: number): void {
  buf.view.setUint32(at + 4, Bun.hash.crc32(buf.bytes.subarray(at + 8, at + len), salt), true);
}

/** Appends one record whose payload is `payloadBytes` long, filled by `fill(bytes, offset)`. */
export function encodeRecord(
  buf: GrowableBuffer,
  salt: number,
  type: RecordType,
  group: number,
  term: number,
  index: number,
  payloadBytes: number,
  fill?: (bytes: Uint8Array, view: DataView, at: number) => void,
): number {
  const len = RECORD_HEADER_BYTES + payloadBytes;
  if (len > RECORD_BYTES_MAX) throw new Error(`WAL record of ${len} bytes exceeds ${RECORD_BYTES_MAX}`);
  const at = buf.reserve(len);
  writeHeader(buf, at, len, group, term, index, type);
  if (fill) fill(buf.bytes, buf.view, at + RECORD_HEADER_BYTES);
  seal(buf, at, len, salt);
  return len;
}

export function entryRecordBytes(e: Entry): number {
  return RECORD_HEADER_BYTES + 1 + e.data.length;
}

export function encodeEntry(buf: GrowableBuffer, salt: number, group: number, e: Entry): number {
  return encodeRecord(buf, salt, RecordType.Entry, group, e.term, e.index, 1 + e.data.length, (bytes, _v, at) => {
    bytes[at] = e.type;
    bytes.set(e.data, at + 1);
  });
}

export function encodeHardState(buf: GrowableBuffer, salt: number, group: number, hs: HardState): number {
  return encodeRecord(buf, salt, RecordType.HardState, group, hs.term, hs.commit, 4, (_b, v, at) => {
    v.setUint32(at, hs.vote, true);
  });
}

export function snapshotPayloadBytes(m: SnapshotMeta): number {
  return 8 + 4 * (m.conf.voters.length + m.conf.learners.length) + m.data.length;
}

export function encodeSnapshot(buf: GrowableBuffer, salt: number, group: number, m: SnapshotMeta): number {
  return encodeRecord(buf, salt, RecordType.Snapshot, group, m.term, m.index, snapshotPayloadBytes(m), (b, v, at) => {
    let p = at;
    for (const ids of [m.conf.voters, m.conf.learners]) {
      v.setUint32(p, ids.length, true);
      p += 4;
      for (const id of ids) {
        v.setUint32(p, id, true);
        p += 4;
      }
    }
    b.set(m.data, p);
  });
}

/**
 * Decodes the record at `pos` of a segment, or says why it cannot: "end" (zero length: clean end of
 * written data) or "invalid" (torn or corrupt). Payload is a view into `data`.
 */
export function decodeRecord(
  data: Uint8Array,
  view: DataView,
  pos: number,
  salt: number,
): { ok: true; record: WalRecord; len: number } | { ok: false; end: boolean; reason: string } {
  if (pos + 4 > data.length) return { ok: false, end: true, reason: "end of file" };
  const len = view.getUint32(pos, true);
  if (len === 0) return { ok: false, end: true, reason: "end of records" };
  if (len < RECORD_HEADER_BYTES || len > RECORD_BYTES_MAX) return { ok: false, end: false, reason: `bad length ${len}` };
  if (pos + len > data.length) return { ok: false, end: false, reason: `record of ${len} bytes runs past end of file` };
  const crc = view.getUint32(pos + 4, true);
  if (Bun.hash.crc32(data.subarray(pos + 8, pos + len), salt) !== crc) {
    return { ok: false, end: false, reason: "checksum mismatch" };
  }
  const type = view.getUint8(pos + 28);
  if (type < RecordType.Entry || type > RecordType.Drop) return { ok: false, end: false, reason: `bad type ${type}` };
  return {
    ok: true,
    len,
    record: {
      type,
      group: view.getUint32(pos + 8, true),
      term: readU64(view, pos + 12),
      index: readU64(view, pos + 20),
      payload: data.subarray(pos + RECORD_HEADER_BYTES, pos + len),
    },
  };
}

export function decodeEntry(r: WalRecord): Entry {
  return { term: r.term, index: r.index, type: r.payload[0] as EntryType, data: r.payload.subarray(1) };
}

export function decodeHardState(r: WalRecord): HardState {
  const v = new DataView(r.payload.buffer, r.payload.byteOffset, r.payload.byteLength);
  return { term: r.term, commit: r.index, vote: v.getUint32(0, true) };
}

export function decodeSnapshot(r: WalRecord): SnapshotMeta {
  const v = new DataView(r.payload.buffer, r.payload.byteOffset, r.payload.byteLength);
  let p = 0;
  const lists: number[][] = [];
  for (let k = 0; k < 2; k++) {
    const n = v.getUint32(p, true);
    p += 4;
    const ids: number[] = [];
    for (let i = 0; i < n; i++, p += 4) ids.push(v.getUint32(p, true));
    lists.push(ids);
  }
  const conf: ConfState = { voters: lists[0] ?? [], learners: lists[1] ?? [] };
  return { term: r.term, index: r.index, conf, data: r.payload.slice(p) };
}
