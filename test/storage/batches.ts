// Builds stamped record batches in the stored format (../../src/wire/README.md) without the wire helper.
export interface BatchSpec {
  baseOffset: number;
  raftIndex: number;
  recordCount?: number;
  payloadBytes?: number; // bytes of the records area
  firstTimestamp?: number;
  maxTimestamp?: number;
}

export function makeBatch(spec: BatchSpec): Uint8Array {
  const recordCount = spec.recordCount ?? 1;
  const payloadBytes = spec.payloadBytes ?? 40;
  const b = new Uint8Array(60 + payloadBytes);
  const v = new DataView(b.buffer);
  v.setBigInt64(0, BigInt(spec.baseOffset));
  v.setBigInt64(8, BigInt(spec.raftIndex));
  v.setUint32(16, b.length - 20);
  v.setUint8(24, 1);
  v.setUint32(26, recordCount);
  v.setBigInt64(30, BigInt(spec.firstTimestamp ?? 1000));
  v.setBigInt64(38, BigInt(spec.maxTimestamp ?? spec.firstTimestamp ?? 1000));
  for (let i = 60; i < b.length; i++) b[i] = (spec.baseOffset * 7 + i) & 0xff;
  v.setUint32(20, Bun.hash.crc32(b.subarray(24)));
  return b;
}

/** Appends `count` batches of `recordCount` records each; returns them. */
export function batchRun(fromOffset: number, fromRaftIndex: number, count: number, recordCount = 2, payloadBytes = 100): Uint8Array[] {
  const out: Uint8Array[] = [];
  let offset = fromOffset;
  for (let i = 0; i < count; i++) {
    out.push(
      makeBatch({
        baseOffset: offset,
        raftIndex: fromRaftIndex + i,
        recordCount,
        payloadBytes,
        firstTimestamp: 1000 + offset,
        maxTimestamp: 1000 + offset + recordCount - 1,
      }),
    );
    offset += recordCount;
  }
  return out;
}

export function concat(parts: Uint8Array[]): Uint8Array {
  const n = parts.reduce((s, p) => s + p.length, 0);
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
