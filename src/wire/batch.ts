/**
 * Record batches: the unit producers send, the WAL stores, followers replicate and consumers read.
 * The layout is in README.md. The broker only verifies and stamps them; it never decodes the records.
 */

export const BATCH_MAGIC = 1;
/** Bytes before the first record. */
export const BATCH_HEADER_BYTES = 60;
/** baseOffset + raftIndex + batchLength: the bytes not counted by batchLength. */
export const BATCH_LENGTH_PREFIX_BYTES = 20;
/** The CRC covers [CRC_START, end): stamping offsets never changes it. */
const CRC_START = 24;
const MAX_RECORDS = 0xffffffff;
const MAX_INT64_SAFE = Number.MAX_SAFE_INTEGER;

export type Bytes = Uint8Array | string;

export interface RecordHeader {
  key: string;
  value: Bytes;
}

export interface RecordInput {
  key?: Bytes;
  value: Bytes;
  headers?: RecordHeader[];
  timestampMs?: number;
}

export interface BatchInput {
  producerId?: number;
  producerEpoch?: number;
  baseSequence?: number;
  records: RecordInput[];
}

export interface BatchHeader {
  baseOffset: number;
  raftIndex: number;
  batchLength: number;
  crc: number;
  magic: number;
  attributes: number;
  recordCount: number;
  firstTimestampMs: number;
  maxTimestampMs: number;
  producerId: number;
  producerEpoch: number;
  baseSequence: number;
}

export interface DecodedRecord {
  offset: number;
  timestampMs: number;
  /** Views into the batch: copy them to keep them past the batch's life. */
  key: Uint8Array | undefined;
  value: Uint8Array;
  headers: { key: string; value: Uint8Array }[];
}

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: false });

function toBytes(b: Bytes): Uint8Array {
  return typeof b === "string" ? utf8.encode(b) : b;
}

function setInt64(view: DataView, pos: number, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`int64 field must be a non-negative safe integer, got ${n}`);
  view.setUint32(pos, Math.floor(n / 0x100000000));
  view.setUint32(pos + 4, n >>> 0);
}

function getInt64(view: DataView, pos: number): number {
  const hi = view.getInt32(pos);
  const lo = view.getUint32(pos + 4);
  return hi * 0x100000000 + lo;
}

function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Builds one batch (baseOffset and raftIndex 0, for the leader to stamp). `alloc` may hand out memory that
 * is not zeroed: every byte of the batch is written here.
 */
export function encodeBatch(input: BatchInput, alloc: (size: number) => Uint8Array = (n) => new Uint8Array(n)): Uint8Array {
  const records = input.records;
  if (records.length === 0) throw new Error("a batch needs at least one record");
  if (records.length > MAX_RECORDS) throw new Error("too many records for one batch");
  const now = Date.now();
  let firstTs = Infinity;
  let maxTs = -Infinity;
  let size = BATCH_HEADER_BYTES;
  // Two passes over the records (size, then bytes), with no object or array per record (keys, values and
  // sizes kept by index). Measured as for the producer's SendCall: its user CPU 1.04 -> 0.89 us per 1 KiB message.
  const n = records.length;
  const keys = new Array<Uint8Array | undefined>(n);
  const values = new Array<Uint8Array>(n);
  const stamps = new Array<number>(n);
  const bodies = new Array<number>(n);
  /** Per record with headers: key and value bytes, alternating. */
  let headerBytes: (Uint8Array[] | undefined)[] | undefined;
  for (let i = 0; i < n; i++) {
    const r = records[i]!;
    const ts = r.timestampMs ?? now;
    if (!Number.isSafeInteger(ts) || ts < 0) throw new Error(`bad record timestamp ${ts}`);
    if (ts < firstTs) firstTs = ts;
    if (ts > maxTs) maxTs = ts;
    stamps[i] = ts;
    const key = r.key === undefined ? undefined : toBytes(r.key);
    const value = toBytes(r.value);
    keys[i] = key;
    values[i] = value;
    let body = 4 + 4 + (key?.length ?? 0) + 4 + value.length + 2;
    const headers = r.headers;
    if (headers !== undefined && headers.length > 0) {
      if (headers.length > 0xffff) throw new Error("too many headers on one record");
      const encoded: Uint8Array[] = [];
      for (const h of headers) {
        const k = utf8.encode(h.key);
        if (k.length > 0xffff) throw new Error("header key longer than 65535 bytes");
        const hv = toBytes(h.value);
        encoded.push(k, hv);
        body += 2 + k.length + 4 + hv.length;
      }
      (headerBytes ??= new Array<Uint8Array[] | undefined>(n))[i] = encoded;
    }
    bodies[i] = body;
    size += 4 + body;
  }
  if (maxTs - firstTs > 0xffffffff) throw new Error("record timestamps of one batch span more than 2^32 ms");
  if (size - BATCH_LENGTH_PREFIX_BYTES > 0xffffffff) throw new Error("batch longer than 4 GiB");

  const out = alloc(size);
  if (out.length !== size) throw new Error(`batch buffer of ${out.length} bytes, needed ${size}`);
  out.fill(0, 0, BATCH_HEADER_BYTES); // baseOffset, raftIndex and any header byte not set below
  const v = viewOf(out);
  v.setUint32(16, size - BATCH_LENGTH_PREFIX_BYTES);
  out[24] = BATCH_MAGIC;
  out[25] = 0;
  v.setUint32(26, n);
  setInt64(v, 30, firstTs);
  setInt64(v, 38, maxTs);
  setInt64(v, 46, input.producerId ?? 0);
  v.setUint16(54, input.producerEpoch ?? 0);
  v.setUint32(56, input.baseSequence ?? 0);
  let pos = BATCH_HEADER_BYTES;
  for (let i = 0; i < n; i++) {
    const key = keys[i];
    const value = values[i]!;
    const hb = headerBytes?.[i];
    v.setUint32(pos, bodies[i]!);
    v.setUint32(pos + 4, stamps[i]! - firstTs);
    pos += 8;
    if (key === undefined) {
      v.setInt32(pos, -1);
      pos += 4;
    } else {
      v.setInt32(pos, key.length);
      out.set(key, pos + 4);
      pos += 4 + key.length;
    }
    v.setInt32(pos, value.length);
    out.set(value, pos + 4);
    pos += 4 + value.length;
    v.setUint16(pos, hb === undefined ? 0 : hb.length / 2);
    pos += 2;
    if (hb !== undefined) {
      for (let j = 0; j < hb.length; j += 2) {
        const k = hb[j]!;
        const hv = hb[j + 1]!;
        v.setUint16(pos, k.length);
        out.set(k, pos + 2);
        pos += 2 + k.length;
        v.setUint32(pos, hv.length);
        out.set(hv, pos + 4);
        pos += 4 + hv.length;
      }
    }
  }
  if (pos !== size) throw new Error(`batch size mismatch: wrote ${pos}, planned ${size}`);
  v.setUint32(20, Bun.hash.crc32(out.subarray(CRC_START)));
  return out;
}

/** Reads the fixed header; the caller checks the length first (verifyBatch does). */
export function readBatchHeader(bytes: Uint8Array): BatchHeader {
  if (bytes.length < BATCH_HEADER_BYTES) throw new Error(`batch header needs ${BATCH_HEADER_BYTES} bytes, got ${bytes.length}`);
  const v = viewOf(bytes);
  return {
    baseOffset: getInt64(v, 0),
    raftIndex: getInt64(v, 8),
    batchLength: v.getUint32(16),
    crc: v.getUint32(20),
    magic: bytes[24]!,
    attributes: bytes[25]!,
    recordCount: v.getUint32(26),
    firstTimestampMs: getInt64(v, 30),
    maxTimestampMs: getInt64(v, 38),
    producerId: getInt64(v, 46),
    producerEpoch: v.getUint16(54),
    baseSequence: v.getUint32(56),
  };
}

/** Total bytes of the batch starting at bytes[0], from its length field (undefined if not readable). */
export function batchSize(bytes: Uint8Array): number | undefined {
  if (bytes.length < BATCH_LENGTH_PREFIX_BYTES) return undefined;
  return BATCH_LENGTH_PREFIX_BYTES + viewOf(bytes).getUint32(16);
}

/**
 * Checks that `bytes` is exactly one well-formed batch: length, magic, CRC, and that the records fill it
 * exactly as recordCount says. Returns what is wrong, or undefined.
 */
export function verifyBatch(bytes: Uint8Array): string | undefined {
  if (bytes.length < BATCH_HEADER_BYTES) return `batch of ${bytes.length} bytes is shorter than its ${BATCH_HEADER_BYTES}-byte header`;
  const h = readBatchHeader(bytes);
  if (BATCH_LENGTH_PREFIX_BYTES + h.batchLength !== bytes.length) {
    return `batch length field says ${BATCH_LENGTH_PREFIX_BYTES + h.batchLength} bytes, got ${bytes.length}`;
  }
  if (h.magic !== BATCH_MAGIC) return `unknown batch magic ${h.magic}`;
  const crc = Bun.hash.crc32(bytes.subarray(CRC_START));
  if (crc !== h.crc) return `batch crc mismatch: stored ${h.crc}, computed ${crc}`;
  if (h.attributes !== 0) return `unsupported batch attributes ${h.attributes}`;
  if (h.recordCount === 0) return "batch has no records";
  if (h.baseOffset < 0 || h.raftIndex < 0) return "negative offset or raft index";
  if (h.maxTimestampMs < h.firstTimestampMs) return "max timestamp before first timestamp";
  return walkRecords(bytes, h, undefined);
}

/**
 * Walks the records, checking every length against the bytes that hold it; hands each record to `visit`
 * if given. Returns what is wrong, or undefined.
 */
function walkRecords(
  bytes: Uint8Array,
  h: BatchHeader,
  visit: ((r: DecodedRecord) => void) | undefined,
): string | undefined {
  const v = viewOf(bytes);
  const end = bytes.length;
  let pos = BATCH_HEADER_BYTES;
  for (let i = 0; i < h.recordCount; i++) {
    if (pos + 4 > end) return `record ${i} starts past the end of the batch`;
    const recEnd = pos + 4 + v.getUint32(pos);
    if (recEnd > end || recEnd < pos + 4 + 14) return `record ${i} length out of bounds`;
    pos += 4;
    const tsDelta = v.getUint32(pos);
    const keyLen = v.getInt32(pos + 4);
    pos += 8;
    if (keyLen < -1 || pos + Math.max(0, keyLen) + 4 > recEnd) return `record ${i} key length out of bounds`;
    const key = keyLen >= 0 ? bytes.subarray(pos, pos + keyLen) : undefined;
    pos += Math.max(0, keyLen);
    const valueLen = v.getInt32(pos);
    pos += 4;
    if (valueLen < 0 || pos + valueLen + 2 > recEnd) return `record ${i} value length out of bounds`;
    const value = bytes.subarray(pos, pos + valueLen);
    pos += valueLen;
    const headerCount = v.getUint16(pos);
    pos += 2;
    const headers: DecodedRecord["headers"] = [];
    for (let j = 0; j < headerCount; j++) {
      if (pos + 2 > recEnd) return `record ${i} header ${j} out of bounds`;
      const hk = v.getUint16(pos);
      pos += 2;
      if (pos + hk + 4 > recEnd) return `record ${i} header ${j} key out of bounds`;
      const hkBytes = bytes.subarray(pos, pos + hk);
      pos += hk;
      const hv = v.getUint32(pos);
      pos += 4;
      if (pos + hv > recEnd) return `record ${i} header ${j} value out of bounds`;
      if (visit) headers.push({ key: utf8Decoder.decode(hkBytes), value: bytes.subarray(pos, pos + hv) });
      pos += hv;
    }
    if (pos !== recEnd) return `record ${i} has ${recEnd - pos} bytes beyond its fields`;
    if (h.firstTimestampMs + tsDelta > h.maxTimestampMs) return `record ${i} timestamp after the batch's max`;
    visit?.({ offset: h.baseOffset + i, timestampMs: h.firstTimestampMs + tsDelta, key, value, headers });
  }
  if (pos !== end) return `${end - pos} bytes after the last record`;
  return undefined;
}

/** Decodes every record (offset = baseOffset + i). Throws on a batch that does not verify. */
export function decodeBatch(bytes: Uint8Array): DecodedRecord[] {
  const problem = verifyBatchFraming(bytes);
  if (problem !== undefined) throw new Error(`corrupt batch: ${problem}`);
  const h = readBatchHeader(bytes);
  const out: DecodedRecord[] = [];
  const walked = walkRecords(bytes, h, (r) => out.push(r));
  if (walked !== undefined) throw new Error(`corrupt batch: ${walked}`);
  return out;
}

/** verifyBatch without the record walk (decodeBatch walks them anyway). */
function verifyBatchFraming(bytes: Uint8Array): string | undefined {
  if (bytes.length < BATCH_HEADER_BYTES) return `batch of ${bytes.length} bytes is shorter than its header`;
  const h = readBatchHeader(bytes);
  if (BATCH_LENGTH_PREFIX_BYTES + h.batchLength !== bytes.length) return `batch length field disagrees with ${bytes.length} bytes`;
  if (h.magic !== BATCH_MAGIC) return `unknown batch magic ${h.magic}`;
  const crc = Bun.hash.crc32(bytes.subarray(CRC_START));
  if (crc !== h.crc) return `batch crc mismatch: stored ${h.crc}, computed ${crc}`;
  return undefined;
}

/** Writes the offset of the first record and the Raft entry index in place (the CRC does not cover them). */
export function stampBatch(bytes: Uint8Array, baseOffset: number, raftIndex: number): void {
  if (bytes.length < BATCH_HEADER_BYTES) throw new Error("cannot stamp a truncated batch");
  if (baseOffset > MAX_INT64_SAFE || raftIndex > MAX_INT64_SAFE) throw new Error("offset above 2^53");
  const v = viewOf(bytes);
  setInt64(v, 0, baseOffset);
  setInt64(v, 8, raftIndex);
}

/**
 * Iterates concatenated batches (a fetch response, a fragment) as views. Throws on a batch that runs past
 * the end; does not verify CRCs (call verifyBatch on each).
 */
export function* splitBatches(bytes: Uint8Array): Generator<Uint8Array> {
  let pos = 0;
  while (pos < bytes.length) {
    const size = batchSize(bytes.subarray(pos));
    if (size === undefined || size < BATCH_HEADER_BYTES || pos + size > bytes.length) {
      throw new Error(`truncated batch at byte ${pos} of ${bytes.length}`);
    }
    yield bytes.subarray(pos, pos + size);
    pos += size;
  }
}
