/**
 * Records as the client sees them, and the batches they travel in (format and codec: src/wire/batch.ts).
 * The client encodes batches for the producer and decodes fetched ones for the consumer; brokers never do.
 */
import { batchSize, decodeBatch, encodeBatch, type DecodedRecord as WireRecord } from "../wire/batch";

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

export type DecodedRecord = WireRecord;

export interface BatchIdentity {
  producerId: number;
  producerEpoch: number;
  baseSequence: number;
}

const encoder = new TextEncoder();

export const toBytes = (v: string | Uint8Array): Uint8Array => (typeof v === "string" ? encoder.encode(v) : v);

/** Bytes one record takes inside a batch (what batching by size counts). */
export function recordBytes(r: OutgoingRecord): number {
  let n = 4 + 4 + 4 + (r.key?.length ?? 0) + 4 + r.value.length + 2;
  for (const h of r.headers) n += 2 + encoder.encode(h.key).length + 4 + h.value.length;
  return n;
}

export function encodeRecords(records: OutgoingRecord[], id: BatchIdentity, alloc?: (size: number) => Uint8Array): Uint8Array {
  return encodeBatch({ ...id, records }, alloc);
}

/**
 * Decodes concatenated stored batches (a FetchResponse's records). A batch cut short at the very end (a
 * fetch limited by bytes) is left for the next fetch; a whole batch that fails its checks throws.
 */
export function decodeRecords(bytes: Uint8Array): DecodedRecord[] {
  const out: DecodedRecord[] = [];
  let at = 0;
  while (at < bytes.length) {
    const size = batchSize(bytes.subarray(at));
    if (size === undefined || at + size > bytes.length) break;
    for (const r of decodeBatch(bytes.subarray(at, at + size))) out.push(r);
    at += size;
  }
  return out;
}
