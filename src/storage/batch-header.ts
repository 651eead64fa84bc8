// Reads the fixed header of a stored record batch (layout in ../wire/README.md, big-endian). Storage
// never decodes records; it needs offsets, raft index, length, timestamps and the checksum.
export const BATCH_HEADER_BYTES = 60;
export const BATCH_LENGTH_OFFSET = 16;
export const BATCH_CRC_FROM = 24; // the crc covers [24, end): stamping offsets does not change it
export const BATCH_BYTES_MAX = 64 * 1024 * 1024;

export interface BatchHeader {
  baseOffset: number;
  raftIndex: number;
  sizeBytes: number; // whole batch: 20 + batchLength
  crc: number;
  recordCount: number;
  firstTimestamp: number;
  maxTimestamp: number;
}

/** A big-endian int64 as a number from two 32-bit halves: no BigInt per field on the read path. */
function readI64(view: DataView, at: number): number {
  return view.getInt32(at) * 0x1_0000_0000 + view.getUint32(at + 4);
}

/** Header at `pos`, or a reason it cannot be one (too short, impossible length or count). */
export function readBatchHeader(view: DataView, pos: number): BatchHeader | string {
  if (pos + BATCH_HEADER_BYTES > view.byteLength) return "truncated batch header";
  const batchLength = view.getUint32(pos + BATCH_LENGTH_OFFSET);
  const sizeBytes = 20 + batchLength;
  if (sizeBytes < BATCH_HEADER_BYTES || sizeBytes > BATCH_BYTES_MAX) return `impossible batch length ${batchLength}`;
  const recordCount = view.getUint32(pos + 26);
  if (recordCount === 0) return "batch with no records";
  return {
    baseOffset: readI64(view, pos),
    raftIndex: readI64(view, pos + 8),
    sizeBytes,
    crc: view.getUint32(pos + 20),
    recordCount,
    firstTimestamp: readI64(view, pos + 30),
    maxTimestamp: readI64(view, pos + 38),
  };
}

/** True when the batch at `pos` (header already read) is whole in `bytes` and its checksum matches. */
export function batchChecksumOk(bytes: Uint8Array, pos: number, h: BatchHeader): boolean {
  if (pos + h.sizeBytes > bytes.length) return false;
  return Bun.hash.crc32(bytes.subarray(pos + BATCH_CRC_FROM, pos + h.sizeBytes)) === h.crc;
}

export function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
