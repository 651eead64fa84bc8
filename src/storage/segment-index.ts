// The sparse indexes beside a sealed segment, kept in memory for every segment and persisted at seal:
//   offset index: relative offset -> file position of the batch holding it (every indexIntervalBytes)
//   time index:   running max timestamp -> relative offset of the batch that raised it
// Each file ends with a crc32 and records the segment size it describes, so a stale or damaged index
// is detected and rebuilt by scanning the segment.
const OFFSET_MAGIC = 0x47494458; // "GIDX"
const TIME_MAGIC = 0x47544958; // "GTIX"
const OFFSET_HEADER_BYTES = 48;
const TIME_HEADER_BYTES = 12;

export interface SegmentSummary {
  baseOffset: number;
  nextOffset: number;
  sizeBytes: number;
  lastRaftIndex: number;
  maxTimestamp: number; // -1 when the segment holds no batch
}

export class SegmentIndex {
  readonly rel: number[] = []; // relative offsets, increasing
  readonly pos: number[] = []; // positions, increasing
  readonly timeTs: number[] = []; // running max timestamps, increasing
  readonly timeRel: number[] = [];

  addOffset(rel: number, pos: number): void {
    const last = this.rel.length - 1;
    if (last >= 0 && (rel <= this.rel[last]! || pos <= this.pos[last]!)) {
      throw new Error(`index invariant: entry ${rel}@${pos} not after ${this.rel[last]}@${this.pos[last]}`);
    }
    this.rel.push(rel);
    this.pos.push(pos);
  }

  addTime(ts: number, rel: number): void {
    const last = this.timeTs.length - 1;
    if (last >= 0 && ts <= this.timeTs[last]!) return;
    this.timeTs.push(ts);
    this.timeRel.push(rel);
  }

  /** The last entry with relative offset <= rel: where a scan for it starts ({0, 0} when none). */
  floor(rel: number): { rel: number; pos: number } {
    let lo = 0;
    let hi = this.rel.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.rel[mid]! <= rel) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found < 0 ? { rel: 0, pos: 0 } : { rel: this.rel[found]!, pos: this.pos[found]! };
  }

  /** The first indexed entry strictly after position `pos`, if any. */
  firstAfterPosition(pos: number): { rel: number; pos: number } | undefined {
    for (let i = 0; i < this.pos.length; i++) if (this.pos[i]! > pos) return { rel: this.rel[i]!, pos: this.pos[i]! };
    return undefined;
  }

  /** The last time entry whose timestamp is < ts: every batch up to it is too old ({-1} when none). */
  timeFloorBelow(ts: number): number {
    let lo = 0;
    let hi = this.timeTs.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.timeTs[mid]! < ts) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found < 0 ? -1 : this.timeRel[found]!;
  }

  /** Drops entries at or beyond position `pos` (the segment was truncated there). */
  truncateAtPosition(pos: number, relLimit: number): void {
    let k = this.pos.findIndex((p) => p >= pos);
    if (k >= 0) {
      this.pos.length = k;
      this.rel.length = k;
    }
    k = this.timeRel.findIndex((r) => r >= relLimit);
    if (k >= 0) {
      this.timeRel.length = k;
      this.timeTs.length = k;
    }
  }

  encodeOffsets(s: SegmentSummary): Uint8Array {
    const n = this.rel.length;
    const b = new Uint8Array(OFFSET_HEADER_BYTES + n * 8 + 4);
    const v = new DataView(b.buffer);
    v.setUint32(0, OFFSET_MAGIC);
    v.setUint32(4, n);
    v.setBigInt64(8, BigInt(s.baseOffset));
    v.setBigInt64(16, BigInt(s.nextOffset));
    v.setBigInt64(24, BigInt(s.sizeBytes));
    v.setBigInt64(32, BigInt(s.lastRaftIndex));
    v.setBigInt64(40, BigInt(s.maxTimestamp));
    for (let i = 0; i < n; i++) {
      v.setUint32(OFFSET_HEADER_BYTES + i * 8, this.rel[i]!);
      v.setUint32(OFFSET_HEADER_BYTES + i * 8 + 4, this.pos[i]!);
    }
    v.setUint32(b.length - 4, Bun.hash.crc32(b.subarray(0, b.length - 4)));
    return b;
  }

  encodeTimes(): Uint8Array {
    const n = this.timeTs.length;
    const b = new Uint8Array(TIME_HEADER_BYTES + n * 12 + 4);
    const v = new DataView(b.buffer);
    v.setUint32(0, TIME_MAGIC);
    v.setUint32(4, n);
    for (let i = 0; i < n; i++) {
      v.setBigInt64(TIME_HEADER_BYTES + i * 12, BigInt(this.timeTs[i]!));
      v.setUint32(TIME_HEADER_BYTES + i * 12 + 8, this.timeRel[i]!);
    }
    v.setUint32(b.length - 4, Bun.hash.crc32(b.subarray(0, b.length - 4)));
    return b;
  }

  /** Parses both files; undefined if either is damaged, inconsistent, or does not describe `sizeBytes`. */
  static decode(
    offsets: Uint8Array,
    times: Uint8Array,
    baseOffset: number,
    sizeBytes: number,
  ): { index: SegmentIndex; summary: SegmentSummary } | undefined {
    if (offsets.length < OFFSET_HEADER_BYTES + 4 || times.length < TIME_HEADER_BYTES + 4) return undefined;
    const v = new DataView(offsets.buffer, offsets.byteOffset, offsets.byteLength);
    const t = new DataView(times.buffer, times.byteOffset, times.byteLength);
    if (v.getUint32(0) !== OFFSET_MAGIC || t.getUint32(0) !== TIME_MAGIC) return undefined;
    if (Bun.hash.crc32(offsets.subarray(0, offsets.length - 4)) !== v.getUint32(offsets.length - 4)) return undefined;
    if (Bun.hash.crc32(times.subarray(0, times.length - 4)) !== t.getUint32(times.length - 4)) return undefined;
    const n = v.getUint32(4);
    const m = t.getUint32(4);
    if (offsets.length !== OFFSET_HEADER_BYTES + n * 8 + 4 || times.length !== TIME_HEADER_BYTES + m * 12 + 4) return undefined;
    const summary: SegmentSummary = {
      baseOffset: Number(v.getBigInt64(8)),
      nextOffset: Number(v.getBigInt64(16)),
      sizeBytes: Number(v.getBigInt64(24)),
      lastRaftIndex: Number(v.getBigInt64(32)),
      maxTimestamp: Number(v.getBigInt64(40)),
    };
    if (summary.baseOffset !== baseOffset || summary.sizeBytes !== sizeBytes) return undefined;
    const index = new SegmentIndex();
    try {
      for (let i = 0; i < n; i++) {
        index.addOffset(v.getUint32(OFFSET_HEADER_BYTES + i * 8), v.getUint32(OFFSET_HEADER_BYTES + i * 8 + 4));
      }
      for (let i = 0; i < m; i++) {
        index.addTime(Number(t.getBigInt64(TIME_HEADER_BYTES + i * 12)), t.getUint32(TIME_HEADER_BYTES + i * 12 + 8));
      }
    } catch {
      return undefined;
    }
    if (index.pos.some((p) => p >= sizeBytes)) return undefined;
    return { index, summary };
  }
}
