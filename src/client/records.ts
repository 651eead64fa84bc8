/**
 * Records as the client sees them, and the record batch they travel in (format: src/wire/README.md).
 * The client encodes batches for the producer and decodes fetched ones for the consumer; brokers never do.
 */
export interface Header {
  key: string;
  value: Uint8Array;
}

export interface OutgoingRecord {
  key: Uint8Array | undefined;
  value: Uint8Array;
  headers: Header[];
  timestampMs: number;
}

export interface DecodedRecord {
  offset: number;
  timestampMs: number;
  key: Uint8Array | undefined;
  value: Uint8Array;
  headers: Header[];
}

export interface BatchIdentity {
  producerId: number;
  producerEpoch: number;
  baseSequence: number;
}

const HEADER_BYTES = 60; // fixed batch header, records follow
const encoder = new TextEncoder();

export const toBytes = (v: string | Uint8Array): Uint8Array => (typeof v === "string" ? encoder.encode(v) : v);

/** Bytes one record takes inside a batch. */
export function recordBytes(r: OutgoingRecord): number {
  let n = 4 + 4 + 4 + (r.key?.length ?? 0) + 4 + r.value.length + 2;
  for (const h of r.headers) n += 2 + encoder.encode(h.key).length + 4 + h.value.length;
  return n;
}

export function encodeRecords(records: OutgoingRecord[], id: BatchIdentity): Uint8Array {
  if (records.length === 0) throw new Error("a batch holds at least one record");
  const headerKeys = records.map((r) => r.headers.map((h) => encoder.encode(h.key)));
  let size = HEADER_BYTES;
  for (const r of records) size += recordBytes(r);
  const buf = new Uint8Array(size);
  const dv = new DataView(buf.buffer);
  const first = records[0]!.timestampMs;
  let max = first;
  for (const r of records) if (r.timestampMs > max) max = r.timestampMs;
  dv.setBigInt64(0, 0n);
  dv.setBigInt64(8, 0n);
  dv.setUint32(16, size - 20);
  buf[24] = 1;
  buf[25] = 0;
  dv.setUint32(26, records.length);
  dv.setBigInt64(30, BigInt(first));
  dv.setBigInt64(38, BigInt(max));
  dv.setBigInt64(46, BigInt(id.producerId));
  dv.setUint16(54, id.producerEpoch);
  dv.setUint32(56, id.baseSequence >>> 0);
  let o = HEADER_BYTES;
  records.forEach((r, i) => {
    const len = recordBytes(r) - 4;
    dv.setUint32(o, len); o += 4;
    dv.setUint32(o, Math.max(0, r.timestampMs - first)); o += 4;
    if (r.key === undefined) { dv.setInt32(o, -1); o += 4; }
    else { dv.setInt32(o, r.key.length); o += 4; buf.set(r.key, o); o += r.key.length; }
    dv.setInt32(o, r.value.length); o += 4;
    buf.set(r.value, o); o += r.value.length;
    dv.setUint16(o, r.headers.length); o += 2;
    r.headers.forEach((h, j) => {
      const k = headerKeys[i]![j]!;
      dv.setUint16(o, k.length); o += 2; buf.set(k, o); o += k.length;
      dv.setUint32(o, h.value.length); o += 4; buf.set(h.value, o); o += h.value.length;
    });
  });
  if (o !== size) throw new Error(`batch encoder wrote ${o} of ${size} bytes`);
  dv.setUint32(20, Bun.hash.crc32(buf.subarray(24)));
  return buf;
}

/**
 * Decodes concatenated stored batches (a FetchResponse's records). A batch cut short at the end (a fetch
 * limited by bytes) is ignored; anything inconsistent inside a whole batch throws.
 */
export function decodeRecords(bytes: Uint8Array): DecodedRecord[] {
  const out: DecodedRecord[] = [];
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dec = new TextDecoder();
  let at = 0;
  while (at + 20 <= bytes.length) {
    const total = 20 + dv.getUint32(at + 16);
    if (at + total > bytes.length) break;
    if (total < HEADER_BYTES) throw new Error(`record batch at ${at} is ${total} bytes, shorter than its header`);
    const crc = dv.getUint32(at + 20);
    if (Bun.hash.crc32(bytes.subarray(at + 24, at + total)) !== crc) throw new Error(`record batch at byte ${at} fails its checksum`);
    const baseOffset = Number(dv.getBigInt64(at));
    const count = dv.getUint32(at + 26);
    const firstTs = Number(dv.getBigInt64(at + 30));
    let o = at + HEADER_BYTES;
    for (let i = 0; i < count; i++) {
      const end = o + 4 + dv.getUint32(o);
      if (end > at + total) throw new Error(`record ${i} of the batch at ${baseOffset} overruns it`);
      o += 4;
      const tsDelta = dv.getUint32(o); o += 4;
      const keyLen = dv.getInt32(o); o += 4;
      const key = keyLen < 0 ? undefined : bytes.subarray(o, o + keyLen);
      if (keyLen > 0) o += keyLen;
      const valueLen = dv.getInt32(o); o += 4;
      const value = bytes.subarray(o, o + valueLen); o += valueLen;
      const nh = dv.getUint16(o); o += 2;
      const headers: Header[] = [];
      for (let j = 0; j < nh; j++) {
        const kl = dv.getUint16(o); o += 2;
        const k = dec.decode(bytes.subarray(o, o + kl)); o += kl;
        const vl = dv.getUint32(o); o += 4;
        headers.push({ key: k, value: bytes.subarray(o, o + vl) }); o += vl;
      }
      if (o !== end) throw new Error(`record ${i} of the batch at ${baseOffset} has ${end - o} stray bytes`);
      out.push({ offset: baseOffset + i, timestampMs: firstTs + tsDelta, key, value, headers });
    }
    at += total;
  }
  return out;
}
