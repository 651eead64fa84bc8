// One partition's log: `<dir>/<20-digit base offset>.log` segments of stamped record batches, each sealed
// segment with a sparse offset index and a time index beside it. Appends go to the page cache without an
// fsync (the shared WAL made them durable); flush() makes them durable here so the WAL can let go.
// Batches are stored and served byte-for-byte; every read verifies their checksum.
import { writeFileAtomic, writeFileDurable, writeFileDurableAsync } from "./atomic-file";
import { join } from "node:path";
import {
  BATCH_HEADER_BYTES,
  type BatchHeader,
  batchChecksumOk,
  readBatchHeader,
  viewOf,
} from "./batch-header";
import { StorageError, storageErrorFromOs } from "./errors";
import { realFileLayer } from "./file-layer";
import { SegmentIndex } from "./segment-index";
import type {
  DamagedRange,
  FileHandle,
  FileLayer,
  Fragment,
  PartitionLogOptions,
  PartitionLogSettings,
  ReadResult,
  StorageLogger,
} from "./types";

const DEFAULT_SEGMENT_BYTES = 256 * 1024 * 1024;
const SEGMENT_BYTES_MAX = 2 ** 31; // positions are u32 in the index
const DEFAULT_SEGMENT_MS = 7 * 24 * 3600 * 1000;
const DEFAULT_INDEX_INTERVAL_BYTES = 4096;
const SCAN_CHUNK_BYTES = 4 * 1024 * 1024;
// Measured (3 brokers on one disk, RF3, 1 KiB window 256 / 64 KiB window 256): without write-behind every
// broker's checkpoint fdatasync'd a whole WAL segment's worth of segment data at once, and each such burst
// held every broker's WAL fdatasync for 150-220 ms (p999 100-490 ms, 64 KiB 32-47 MB/s). Syncing every
// 1 MiB: p999 26-33 ms, 1 KiB +10% msg/s, 64 KiB 65-73 MB/s; 4 MiB was between the two. Later, with
// checkpoints no longer bursty (bench/ab.ts, 4 rounds x 2 runs of 10k at 64 KiB, 3 x 2 of 200k at 1 KiB):
// 2 MiB 64 KiB 2,006 -> 2,144 msg/s median (brokers' system CPU -9%), 1 KiB level (55.0k -> 55.2k, p99
// 12.8 -> 12.4 ms); 4 MiB 64 KiB 2,112 (p99 251 -> 205 ms) but 1 KiB 64.0k -> 56.5k, p99 10.1 -> 15.7 ms.
const DEFAULT_WRITE_BEHIND_BYTES = 2 * 1024 * 1024;
/** The log's first offset as last recorded (see readLogStart). */
const LOG_START_FILE = "log-start";
/** Present only while resetTo runs (see finishReset). */
const RESET_MARKER = "reset-to";

interface Segment {
  baseOffset: number;
  nextOffset: number;
  sizeBytes: number;
  lastRaftIndex: number;
  maxTimestamp: number;
  createdMs: number;
  sealed: boolean;
  handle: FileHandle;
  writable: boolean; // sealed segments are opened read-only until a repair or truncation needs them
  index: SegmentIndex;
  bytesSinceIndex: number;
}

function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new Error(`partition log invariant: ${msg}`);
}

function fileBase(baseOffset: number): string {
  return String(baseOffset).padStart(20, "0");
}

export class PartitionLog {
  private readonly fs: FileLayer;
  private readonly log: StorageLogger;
  // Set by the topic's config, which an operator may alter while the log is open (configure).
  private segmentBytes = DEFAULT_SEGMENT_BYTES;
  private segmentMs = DEFAULT_SEGMENT_MS;
  private retentionBytes = -1;
  private retentionMs = -1;
  private readonly indexIntervalBytes: number;
  private segments: Segment[] = [];
  private damaged: DamagedRange[] = [];
  private sealing: Promise<void> = Promise.resolve();
  private dirDirty = false; // a segment file was created: the directory needs an fsync
  private readonly writeBehindBytes: number;
  private unsyncedBytes = 0; // appended since the last write-behind sync was queued
  private writeBehindQueued = false;
  private failure: StorageError | undefined;
  private closed = false;

  private constructor(readonly dir: string, opts: PartitionLogOptions) {
    this.fs = opts.fs ?? realFileLayer;
    this.log = opts.log ?? (() => {});
    this.configure(opts);
    this.indexIntervalBytes = opts.indexIntervalBytes ?? DEFAULT_INDEX_INTERVAL_BYTES;
    this.writeBehindBytes = opts.writeBehindBytes ?? DEFAULT_WRITE_BEHIND_BYTES;
    assert(this.indexIntervalBytes >= 1, "indexIntervalBytes must be >= 1");
  }

  /**
   * Takes new segment and retention settings (a topic's altered config; unset ones return to the
   * defaults). Nothing is rewritten: a new segment size applies from the next roll, retention from its
   * next pass.
   */
  configure(settings: PartitionLogSettings): void {
    const segmentBytes = settings.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    assert(segmentBytes >= BATCH_HEADER_BYTES && segmentBytes <= SEGMENT_BYTES_MAX, "segmentBytes out of range");
    this.segmentBytes = segmentBytes;
    this.segmentMs = settings.segmentMs ?? DEFAULT_SEGMENT_MS;
    this.retentionBytes = settings.retentionBytes ?? -1;
    this.retentionMs = settings.retentionMs ?? -1;
  }

  static async open(opts: PartitionLogOptions): Promise<PartitionLog> {
    const p = new PartitionLog(opts.dir, opts);
    try {
      p.fs.mkdir(opts.dir);
      p.recover();
    } catch (err) {
      for (const s of p.segments) s.handle.close();
      throw storageErrorFromOs(err, "opening partition log in", opts.dir);
    }
    return p;
  }

  get logStartOffset(): number {
    return this.segments[0]!.baseOffset;
  }
  get nextOffset(): number {
    return this.active().nextOffset;
  }
  /** raftIndex of the last batch held (0 if none). */
  get appliedIndex(): number {
    for (let i = this.segments.length - 1; i >= 0; i--) {
      const s = this.segments[i]!;
      if (s.sizeBytes > 0) return s.lastRaftIndex;
    }
    return 0;
  }
  get sizeBytes(): number {
    return this.segments.reduce((n, s) => n + s.sizeBytes, 0);
  }
  get segmentCount(): number {
    return this.segments.length;
  }

  damagedRanges(): DamagedRange[] {
    return this.damaged.map((d) => ({ ...d }));
  }

  /**
   * The segments and damaged ranges in one line, for an error that depends on them (say, a log found
   * ending before its own snapshot): each segment as [base, next) with its file size, then the damage.
   */
  layout(): string {
    const segs = this.segments.map((s) => `[${s.baseOffset},${s.nextOffset}) ${s.sizeBytes}B${s.sealed ? "" : " active"}`);
    const dmg = this.damaged.map((d) => `[${d.fromOffset},${d.toOffset}) at ${d.position} of ${d.file.slice(this.dir.length + 1)}`);
    return `segments ${segs.join(", ")}; damaged ${dmg.length > 0 ? dmg.join(", ") : "none"}`;
  }

  // ------------------------------------------------------------------------------------------------
  // Writing

  /** Appends one stamped batch (page cache only). Rolls the active segment when full or old. */
  append(batch: Uint8Array, nowMs = Date.now()): void {
    this.checkWritable();
    const h = readBatchHeader(viewOf(batch), 0);
    if (typeof h === "string") throw new StorageError("CORRUPT_DATA", `refusing batch: ${h}`, {});
    assert(h.sizeBytes === batch.length, `batch length field ${h.sizeBytes} != ${batch.length} bytes`);
    assert(h.baseOffset === this.nextOffset, `batch baseOffset ${h.baseOffset} != nextOffset ${this.nextOffset}`);
    if (!batchChecksumOk(batch, 0, h)) throw new StorageError("CORRUPT_DATA", "refusing batch: checksum mismatch", {});
    if (this.nextOffset > this.logStartOffset && h.raftIndex <= this.appliedIndex) this.distrustLast(h.raftIndex);
    let seg = this.active();
    if (seg.sizeBytes > 0 && (seg.sizeBytes + batch.length > this.segmentBytes || nowMs - seg.createdMs >= this.segmentMs)) {
      seg = this.roll(nowMs);
    }
    try {
      seg.handle.write(batch, seg.sizeBytes);
    } catch (err) {
      throw this.fail(err, "appending to");
    }
    this.indexBatch(seg, h, seg.sizeBytes);
    seg.sizeBytes += batch.length;
    this.unsyncedBytes += batch.length;
    if (this.writeBehindBytes > 0 && this.unsyncedBytes >= this.writeBehindBytes && !this.writeBehindQueued) this.writeBehind();
  }

  /**
   * The batch being appended has a raft index at or below the last stored one. The caller's is the one to
   * trust (it comes from the Raft log, and appends follow it in order), so the stored batch's header is
   * damaged: its raft index lies outside the producer's checksum, and as the log's last batch it has no
   * successor for read() or the scrub to compare it with. It is marked damaged, to be repaired from a
   * peer like any other; the append goes on.
   */
  private distrustLast(raftIndex: number): void {
    const offset = this.nextOffset - 1;
    if (this.damagedAt(offset)) return;
    const seg = this.segmentFor(offset);
    let last: { pos: number; header: BatchHeader };
    try {
      last = this.locate(seg, offset);
    } catch (e) {
      // The walk to it met worse damage, recorded already as a damaged range: the append still goes on.
      if (e instanceof StorageError && e.code === "CORRUPT_DATA") return;
      throw e;
    }
    this.damage(seg, last.pos, last.header.baseOffset, `raft index ${last.header.raftIndex} not before the next batch's ${raftIndex}`, false, this.nextOffset);
  }

  /**
   * Starts an fdatasync of the active segment in the background. Nothing waits for it: the WAL already made
   * these batches durable. It keeps the dirty data per file small, so the disk writes it as it comes
   * instead of in one burst at the checkpoint (see DEFAULT_WRITE_BEHIND_BYTES). It joins the sealing chain,
   * which everything that truncates, resets or closes the files awaits first.
   */
  private writeBehind(): void {
    this.unsyncedBytes = 0;
    this.writeBehindQueued = true;
    this.sealing = this.sealing.then(async () => {
      this.writeBehindQueued = false;
      if (this.closed) return;
      // A segment that rolled meanwhile is synced by its own sealing; this covers the one now written.
      await this.active().handle.datasync();
    });
    // A failed fdatasync leaves the page cache's state unknown (the next one may succeed with data lost),
    // so it stops the log like any other write failure.
    this.sealing.catch((err: unknown) => this.fail(err, "syncing (write-behind)"));
  }

  private indexBatch(seg: Segment, h: BatchHeader, pos: number): void {
    this.indexEntries(seg, h, pos, true);
    seg.nextOffset = h.baseOffset + h.recordCount;
    seg.lastRaftIndex = h.raftIndex;
  }

  /** A batch's sparse index entries: its offset every indexIntervalBytes (if `mayAddOffset`), its timestamp. */
  private indexEntries(seg: Segment, h: BatchHeader, pos: number, mayAddOffset: boolean): void {
    const rel = h.baseOffset - seg.baseOffset;
    if (pos > 0 && mayAddOffset && seg.bytesSinceIndex >= this.indexIntervalBytes) {
      seg.index.addOffset(rel, pos);
      seg.bytesSinceIndex = 0;
    }
    seg.bytesSinceIndex += h.sizeBytes;
    if (h.maxTimestamp > seg.maxTimestamp) {
      seg.index.addTime(h.maxTimestamp, rel);
      seg.maxTimestamp = h.maxTimestamp;
    }
  }

  /** Seals the active segment in the background (fdatasync, then its indexes) and opens the next. */
  private roll(nowMs: number): Segment {
    const old = this.active();
    old.sealed = true;
    const next = this.newSegment(old.nextOffset, nowMs);
    this.segments.push(next);
    const summary = { ...old, maxTimestamp: old.maxTimestamp };
    this.sealing = this.sealing.then(async () => {
      if (this.closed) return;
      await old.handle.datasync();
      for (const [path, bytes] of this.indexFiles(old.baseOffset, old.index, summary)) await writeFileDurableAsync(this.fs, path, bytes);
    });
    this.sealing.catch((err: unknown) => this.fail(err, "sealing a segment of"));
    return next;
  }

  private newSegment(baseOffset: number, nowMs: number): Segment {
    let handle: FileHandle;
    try {
      handle = this.fs.open(this.path(baseOffset, "log"), "create");
    } catch (err) {
      throw this.fail(err, "creating a segment in");
    }
    this.dirDirty = true;
    return {
      baseOffset,
      nextOffset: baseOffset,
      sizeBytes: 0,
      lastRaftIndex: 0,
      maxTimestamp: -1,
      createdMs: nowMs,
      sealed: false,
      handle,
      writable: true,
      index: new SegmentIndex(),
      bytesSinceIndex: 0,
    };
  }

  private makeWritable(seg: Segment): void {
    if (seg.writable) return;
    const path = seg.handle.path;
    const h = this.fs.open(path, "write");
    seg.handle.close();
    seg.handle = h;
    seg.writable = true;
  }

  /**
   * A sealed segment's index files, path and bytes. They are written durably but not atomically, on
   * purpose: an index carries its own checksum and is rebuilt when it does not verify.
   */
  private indexFiles(baseOffset: number, index: SegmentIndex, s: Omit<Segment, "handle" | "index">): [string, Uint8Array][] {
    return [
      [this.path(baseOffset, "index"), index.encodeOffsets(s)],
      [this.path(baseOffset, "timeindex"), index.encodeTimes()],
    ];
  }

  /**
   * Makes everything appended so far durable here. Returns the raftIndex now durable: the broker
   * passes it to wal.release().
   */
  async flush(): Promise<number> {
    this.checkWritable();
    const applied = this.appliedIndex;
    const seg = this.active();
    const dirDirty = this.dirDirty;
    this.dirDirty = false;
    try {
      await this.sealing;
      await seg.handle.datasync();
      if (dirDirty) this.fs.fsyncDir(this.dir);
    } catch (err) {
      throw this.fail(err, "flushing");
    }
    return applied;
  }

  // ------------------------------------------------------------------------------------------------
  // Reading

  /**
   * Whole batches from the one holding `offset`, up to maxBytes (at least one), checksums verified.
   * A read stops at the end of a segment; the caller continues from nextOffset.
   */
  read(offset: number, maxBytes: number): ReadResult {
    if (this.closed) throw new StorageError("IO", `partition log ${this.dir} is closed`);
    this.checkRange(offset);
    if (offset === this.nextOffset) return { records: new Uint8Array(0), nextOffset: offset };
    const seg = this.segmentFor(offset);
    this.refuseDamaged(offset);
    const found = this.locate(seg, offset);
    const first = found.header;
    let want = Math.min(seg.sizeBytes - found.pos, Math.max(maxBytes, first.sizeBytes));
    const buf = new Uint8Array(want);
    const got = this.readAt(seg, buf, found.pos);
    if (got < first.sizeBytes) this.damage(seg, found.pos, found.header.baseOffset, "segment shorter than its batch");
    const view = viewOf(buf);
    let pos = 0;
    let expect = first.baseOffset;
    let prev: { pos: number; baseOffset: number; raftIndex: number } | undefined;
    while (pos + BATCH_HEADER_BYTES <= got) {
      const h = readBatchHeader(view, pos);
      if (typeof h !== "string" && pos + h.sizeBytes > got && pos > 0) break; // the next read starts there
      if (typeof h !== "string" && prev && h.raftIndex <= prev.raftIndex && batchChecksumOk(buf, pos, h) && h.baseOffset === expect) {
        // Each batch is one Raft entry, stamped with its index outside the producer's checksum: indexes that
        // do not increase mean a flipped bit in one of these two headers, and which cannot be told. Both are
        // refused and repaired (a wrong index would mislead recovery, and spread to replicas and repairs).
        const reason = `raft index ${h.raftIndex} not after ${prev.raftIndex}`;
        const end = h.baseOffset + h.recordCount;
        if (prev.pos === 0) this.damage(seg, found.pos, prev.baseOffset, reason, true, end);
        this.damage(seg, found.pos + prev.pos, prev.baseOffset, reason, false, end);
        pos = prev.pos;
        expect = prev.baseOffset;
        break;
      }
      const problem =
        typeof h === "string"
          ? h
          : pos + h.sizeBytes > got
            ? "batch cut short"
            : h.baseOffset !== expect
              ? `batch at offset ${h.baseOffset}, expected ${expect}`
              : !batchChecksumOk(buf, pos, h)
                ? "checksum mismatch"
                : undefined;
      if (problem !== undefined || typeof h === "string") {
        // Serve the good batches before the damage; the next read from there reports it.
        if (pos === 0) this.damage(seg, found.pos, expect, problem ?? "bad header");
        this.damage(seg, found.pos + pos, expect, problem ?? "bad header", false);
        break;
      }
      prev = { pos, baseOffset: h.baseOffset, raftIndex: h.raftIndex };
      expect = h.baseOffset + h.recordCount;
      pos += h.sizeBytes;
    }
    want = pos;
    return { records: buf.subarray(0, want), nextOffset: expect };
  }

  /**
   * One step of a background scrub: reads (so verifies, as any reader does) up to `maxBytes` of batches from
   * `offset`, and returns where the next step starts and how many bytes this one read. Damage found is
   * recorded for repair (damagedRanges) exactly as a reader's would be; ranges already known damaged are
   * stepped over; past the end, or below the log start (retention moved it), it starts again at the log
   * start. Without it a bit flip in data nobody reads stays latent until a lagging consumer or a new
   * replica needs those bytes, which may be after the other copies were lost too.
   */
  scrub(offset: number, maxBytes: number): { next: number; bytes: number } {
    if (this.closed) return { next: offset, bytes: 0 };
    const from = offset >= this.logStartOffset && offset < this.nextOffset ? offset : this.logStartOffset;
    if (from >= this.nextOffset) return { next: from, bytes: 0 };
    try {
      this.checkNeighbours(from);
    } catch (err) {
      if (!(err instanceof StorageError && err.code === "CORRUPT_DATA")) throw err;
    }
    const known = this.damagedAt(from);
    if (known) return { next: known.toOffset, bytes: 0 };
    try {
      const r = this.read(from, maxBytes);
      return { next: r.nextOffset, bytes: r.records.length };
    } catch (err) {
      if (!(err instanceof StorageError && err.code === "CORRUPT_DATA")) throw err;
      const d = this.damagedAt(from);
      return { next: d ? d.toOffset : from + 1, bytes: 0 };
    }
  }

  /**
   * Compares the raft index of the batch starting at `offset` with that of the batch before it, which no
   * read from `offset` holds (a scrub step's first batch, or a segment's): out of order, both batches are
   * damaged, as in read().
   */
  private checkNeighbours(offset: number): void {
    if (offset <= this.logStartOffset || offset >= this.nextOffset) return;
    if (this.damaged.some((d) => d.fromOffset <= offset && offset - 1 < d.toOffset)) return;
    const seg = this.segmentFor(offset);
    const before = offset > seg.baseOffset ? seg : this.segmentFor(offset - 1);
    const a = this.locate(before, offset - 1);
    const b = this.locate(seg, offset);
    if (b.header.baseOffset !== offset || b.header.raftIndex > a.header.raftIndex) return;
    const reason = `raft index ${b.header.raftIndex} not after ${a.header.raftIndex}`;
    const end = offset + b.header.recordCount;
    if (before === seg) {
      this.damage(seg, a.pos, a.header.baseOffset, reason, false, end);
    } else {
      this.damage(before, a.pos, a.header.baseOffset, reason, false, offset);
      this.damage(seg, b.pos, offset, reason, false, end);
    }
  }

  /**
   * Brings what scrub(offset, maxBytes) will read into the page cache on the thread pool: from the index
   * entry its walk starts at, maxBytes and one index interval on. A scrub step awaits this first, so its
   * synchronous read of data nobody has read for months costs a copy, not a wait for the device on the
   * event loop. Best effort: a batch longer than that is partly read by scrub itself.
   */
  async prefetch(offset: number, maxBytes: number): Promise<void> {
    if (this.closed || offset < this.logStartOffset || offset >= this.nextOffset) return;
    const seg = this.segmentFor(offset);
    // checkNeighbours reads the batch before `offset` too, in this segment or at the end of the previous one.
    const before = offset > this.logStartOffset ? this.segmentFor(offset - 1) : seg;
    if (before !== seg) {
      const at = before.index.floor(offset - 1 - before.baseOffset).pos;
      await before.handle.readAhead(at, before.sizeBytes - at);
    }
    const from = seg.index.floor(Math.max(offset - 1, seg.baseOffset) - seg.baseOffset).pos;
    const end = seg.index.floor(offset - seg.baseOffset).pos + maxBytes + this.indexIntervalBytes + BATCH_HEADER_BYTES;
    await seg.handle.readAhead(from, Math.min(seg.sizeBytes, end) - from);
  }

  /** Raw batches for a replica, with a checksum over all of them. */
  readFragment(fromOffset: number, maxBytes: number): Fragment {
    const r = this.read(fromOffset, maxBytes);
    const baseOffset = r.records.length > 0 ? Number(viewOf(r.records).getBigInt64(0)) : fromOffset;
    return { data: r.records, baseOffset, nextOffset: r.nextOffset, crc32: Bun.hash.crc32(r.records) };
  }

  /** The first offset whose batch has maxTimestamp >= ms, or undefined if none is that recent. */
  offsetForTimestamp(ms: number): number | undefined {
    for (const seg of this.segments) {
      if (seg.maxTimestamp < ms || seg.sizeBytes === 0) continue;
      const belowRel = seg.index.timeFloorBelow(ms);
      let pos = 0;
      if (belowRel >= 0) pos = this.locate(seg, seg.baseOffset + belowRel).pos;
      const hdr = new Uint8Array(BATCH_HEADER_BYTES);
      while (pos < seg.sizeBytes) {
        const n = this.readAt(seg, hdr, pos);
        const h = n === BATCH_HEADER_BYTES ? readBatchHeader(viewOf(hdr), 0) : "short";
        if (typeof h === "string") break;
        if (h.maxTimestamp >= ms) return h.baseOffset;
        pos += h.sizeBytes;
      }
    }
    return undefined;
  }

  /** Position and header of the batch holding `offset`, scanning headers from the sparse index. */
  private locate(seg: Segment, offset: number): { pos: number; header: BatchHeader } {
    const start = seg.index.floor(offset - seg.baseOffset);
    let pos = start.pos;
    let expect = seg.baseOffset + start.rel;
    const hdr = new Uint8Array(BATCH_HEADER_BYTES);
    const view = viewOf(hdr);
    while (pos < seg.sizeBytes) {
      const n = this.readAt(seg, hdr, pos);
      const h = n === BATCH_HEADER_BYTES ? readBatchHeader(view, 0) : "truncated batch header";
      if (typeof h === "string") this.damage(seg, pos, expect, h);
      if (h.baseOffset !== expect) this.damage(seg, pos, expect, `batch at offset ${h.baseOffset}, expected ${expect}`);
      if (offset < h.baseOffset + h.recordCount) return { pos, header: h };
      expect = h.baseOffset + h.recordCount;
      pos += h.sizeBytes;
    }
    this.damage(seg, pos, expect, "offset past the end of its segment");
  }

  private readAt(seg: Segment, buf: Uint8Array, pos: number): number {
    try {
      return seg.handle.read(buf, pos);
    } catch (err) {
      throw storageErrorFromOs(err, "reading", seg.handle.path);
    }
  }

  /** Records a damaged range (never served until repaired) and, unless told otherwise, throws. */
  private damage(seg: Segment, pos: number, fromOffset: number, reason: string, raise?: true, endOffset?: number): never;
  private damage(seg: Segment, pos: number, fromOffset: number, reason: string, raise: false, endOffset?: number): void;
  private damage(seg: Segment, pos: number, fromOffset: number, reason: string, raise = true, endOffset?: number): void {
    const file = seg.handle.path;
    if (!this.damaged.some((d) => d.file === file && d.fromOffset <= fromOffset && fromOffset < d.toOffset)) {
      // Unless the caller knows where the damage ends, it runs to the next index entry (known good).
      const after = seg.index.firstAfterPosition(pos);
      const toOffset = endOffset ?? (after ? seg.baseOffset + after.rel : seg.nextOffset);
      const d: DamagedRange = { file, position: pos, fromOffset, toOffset: Math.max(toOffset, fromOffset + 1) };
      this.damaged.push(d);
      this.log("error", "corrupt batch in partition log: range will not be served", { ...d, reason });
    }
    if (raise) {
      throw new StorageError("CORRUPT_DATA", `corrupt data in ${file} at position ${pos}: ${reason}`, {
        file,
        position: pos,
        fromOffset,
      });
    }
  }

  /** The damaged range holding `offset`, if any. */
  private damagedAt(offset: number): DamagedRange | undefined {
    return this.damaged.find((r) => r.fromOffset <= offset && offset < r.toOffset);
  }

  private refuseDamaged(offset: number): void {
    const d = this.damagedAt(offset);
    if (d) {
      throw new StorageError("CORRUPT_DATA", `offset ${offset} is in a damaged range of ${d.file} at ${d.position}`, {
        file: d.file,
        position: d.position,
        fromOffset: d.fromOffset,
        toOffset: d.toOffset,
      });
    }
  }

  private checkRange(offset: number): void {
    if (!Number.isInteger(offset) || offset < this.logStartOffset || offset > this.nextOffset) {
      throw new StorageError(
        "OFFSET_OUT_OF_RANGE",
        `offset ${offset} is outside [${this.logStartOffset}, ${this.nextOffset}]`,
        { earliest: this.logStartOffset, latest: this.nextOffset },
      );
    }
  }

  private segmentFor(offset: number): Segment {
    let lo = 0;
    let hi = this.segments.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.segments[mid]!.baseOffset <= offset) lo = mid;
      else hi = mid - 1;
    }
    let seg = this.segments[lo]!;
    // Skip empty segments (an empty active segment shares its base with the end of the previous one).
    while (offset >= seg.nextOffset && lo + 1 < this.segments.length) seg = this.segments[++lo]!;
    return seg;
  }

  // ------------------------------------------------------------------------------------------------
  // Replication and repair

  /** A replica installs batches read from a peer: verified end to end and batch by batch, then appended. */
  writeFragment(baseOffset: number, data: Uint8Array, crc32: number): void {
    this.checkWritable();
    if (Bun.hash.crc32(data) !== crc32) {
      throw new StorageError("CORRUPT_DATA", "fragment checksum mismatch", { baseOffset });
    }
    if (baseOffset !== this.nextOffset) {
      throw new StorageError("OFFSET_OUT_OF_RANGE", `fragment starts at ${baseOffset}, log ends at ${this.nextOffset}`, {
        earliest: this.logStartOffset,
        latest: this.nextOffset,
      });
    }
    for (const b of splitVerified(data, baseOffset)) this.append(b);
  }

  /**
   * Overwrites a damaged range with a peer's copy of the same batches (identical bytes, since offsets and
   * raft indexes are stamped identically on every replica). May be called repeatedly, front to back.
   */
  repair(fromOffset: number, data: Uint8Array, crc32: number): void {
    this.checkWritable();
    const d = this.damaged.find((r) => r.fromOffset === fromOffset);
    if (!d) throw new StorageError("IO", `no damaged range starts at ${fromOffset}`, { fromOffset });
    if (Bun.hash.crc32(data) !== crc32) throw new StorageError("CORRUPT_DATA", "repair checksum mismatch", { fromOffset });
    const seg = this.segments.find((s) => s.handle.path === d.file);
    assert(seg, `damaged file ${d.file} is no longer in the log`);
    try {
      this.makeWritable(seg);
    } catch (err) {
      throw this.fail(err, "repairing");
    }
    let pos = d.position;
    let offset = fromOffset;
    const end = seg.sizeBytes;
    for (const b of splitVerified(data, fromOffset)) {
      if (offset >= d.toOffset) break;
      try {
        seg.handle.write(b, pos);
      } catch (err) {
        throw this.fail(err, "repairing");
      }
      if (pos >= end) this.indexRepaired(seg, b, pos);
      pos += b.length;
      offset += viewOf(b).getUint32(26);
    }
    // A range repaired at the end of a segment cut short (truncated, or a file rebuilt after a gap) grows
    // the file: reads are bounded by sizeBytes, so it must grow too or the repaired batches stay unserved.
    if (pos > seg.sizeBytes) seg.sizeBytes = pos;
    this.damaged = this.damaged.filter((r) => r !== d);
    if (offset < d.toOffset) {
      this.damaged.push({ ...d, position: pos, fromOffset: offset });
      return;
    }
    // The repaired run must end exactly where the known-good data resumes.
    if (offset !== d.toOffset || (d.toOffset < seg.nextOffset && this.locate(seg, d.toOffset).pos !== pos)) {
      this.damage(seg, pos, offset, "repaired batches do not line up with the segment");
    }
    this.log("info", "damaged range repaired", { file: d.file, fromOffset, toOffset: d.toOffset });
  }

  /**
   * Indexes a repaired batch written past the end the segment's file had (a file of its own for a lost
   * segment, or the tail of one cut short), as an append would: reads then find it without walking from
   * the last index entry, and retention by age sees its timestamp. The segment's end offset was already
   * set by the damaged range, so it is left alone.
   */
  private indexRepaired(seg: Segment, b: Uint8Array, pos: number): void {
    const h = readBatchHeader(viewOf(b), 0);
    assert(typeof h !== "string", "a verified batch has a header");
    const rel = h.baseOffset - seg.baseOffset;
    const last = seg.index.rel.length - 1;
    const afterIndexed = last < 0 || (rel > seg.index.rel[last]! && pos > seg.index.pos[last]!);
    this.indexEntries(seg, h, pos, afterIndexed);
    seg.lastRaftIndex = Math.max(seg.lastRaftIndex, h.raftIndex);
  }

  /** Empties the log and restarts it at `offset` (a replica too far behind installs fragments from there). */
  async resetTo(offset: number): Promise<void> {
    this.checkWritable();
    assert(Number.isInteger(offset) && offset >= 0, `bad reset offset ${offset}`);
    await this.sealing.catch(() => {});
    try {
      // The intent first, durably: a crash part-way is finished by the next open (finishReset), so a
      // half-done reset never looks like a damaged log. Gone before anything is appended after it.
      writeFileAtomic(this.fs, this.resetMarker(), new TextEncoder().encode(String(offset)));
      for (const s of [...this.segments].reverse()) this.removeSegmentFiles(s);
      this.segments = [this.newSegment(offset, Date.now())];
      this.damaged = [];
      this.fs.fsyncDir(this.dir);
      this.recordLogStart(offset);
      this.fs.unlink(this.resetMarker());
      this.fs.fsyncDir(this.dir);
      this.dirDirty = false;
    } catch (err) {
      throw this.fail(err, "resetting");
    }
  }

  /** Cuts every batch at and after `offset` (a batch boundary): recovery of a diverged replica. */
  async truncateTo(offset: number): Promise<void> {
    this.checkWritable();
    if (offset >= this.nextOffset) return;
    if (offset <= this.logStartOffset) return this.resetTo(offset);
    await this.sealing.catch(() => {});
    const target = this.segmentFor(offset);
    const { pos, header } = this.locate(target, offset);
    if (header.baseOffset !== offset) {
      throw new StorageError("IO", `truncateTo(${offset}) is inside the batch at ${header.baseOffset}`, { offset });
    }
    try {
      while (this.active() !== target) this.removeSegmentFiles(this.segments.pop()!);
      const seg = target;
      this.makeWritable(seg);
      for (const ext of ["index", "timeindex"] as const) {
        const p = this.path(seg.baseOffset, ext);
        if (this.fs.exists(p)) this.fs.unlink(p);
      }
      seg.handle.truncate(pos);
      seg.handle.datasyncSync();
      this.fs.fsyncDir(this.dir);
      seg.sealed = false;
      this.rescan(seg, true);
      this.damaged = this.damaged.filter((d) => d.fromOffset < offset);
      for (const d of this.damaged) d.toOffset = Math.min(d.toOffset, offset);
    } catch (err) {
      throw this.fail(err, "truncating");
    }
  }

  /** The raftIndex of the newest batch retention would delete now (0: nothing is due). */
  retentionDue(nowMs: number): number {
    let total = this.sizeBytes;
    let due = 0;
    for (let i = 0; i + 1 < this.segments.length; i++) {
      const s = this.segments[i]!;
      if (!s.sealed || !this.expired(s, total, nowMs)) break;
      total -= s.sizeBytes;
      due = s.lastRaftIndex;
    }
    return due;
  }

  private expired(s: Segment, totalBytes: number, nowMs: number): boolean {
    const bySize = this.retentionBytes >= 0 && totalBytes - s.sizeBytes >= this.retentionBytes;
    const byAge = this.retentionMs >= 0 && s.maxTimestamp >= 0 && s.maxTimestamp < nowMs - this.retentionMs;
    return bySize || byAge;
  }

  /**
   * Deletes whole sealed segments beyond the size or age limits; offsets never shift. Only segments whose
   * batches all have raftIndex <= maxRaftIndex: the caller's recovery must not need them (a group replays
   * its WAL from its last snapshot, and without one from the log's first batch).
   */
  async enforceRetention(nowMs: number, maxRaftIndex = Number.MAX_SAFE_INTEGER): Promise<number> {
    this.checkWritable();
    await this.sealing.catch(() => {});
    let total = this.sizeBytes;
    let removed = 0;
    try {
      while (removed + 1 < this.segments.length) {
        const s = this.segments[removed]!;
        if (!s.sealed || !this.expired(s, total, nowMs) || s.lastRaftIndex > maxRaftIndex) break;
        total -= s.sizeBytes;
        removed++;
      }
      if (removed > 0) {
        // The new start first: a missing segment below it is then known to be retention's doing.
        this.recordLogStart(this.segments[removed]!.baseOffset);
        for (const s of this.segments.splice(0, removed)) this.dropSegment(s);
        this.fs.fsyncDir(this.dir);
      }
    } catch (err) {
      throw this.fail(err, "enforcing retention in");
    }
    if (removed > 0) this.log("info", "retention removed segments", { dir: this.dir, removed, logStartOffset: this.logStartOffset });
    return removed;
  }

  /** Deletes a segment taken out of `segments`, and forgets the damage found in it. */
  private dropSegment(s: Segment): void {
    this.removeSegmentFiles(s);
    this.damaged = this.damaged.filter((d) => d.file !== s.handle.path);
  }

  private removeSegmentFiles(s: Segment): void {
    s.handle.close();
    for (const ext of ["index", "timeindex", "log"] as const) {
      const p = this.path(s.baseOffset, ext);
      if (this.fs.exists(p)) this.fs.unlink(p);
    }
  }

  // ------------------------------------------------------------------------------------------------
  // Recovery

  private resetMarker(): string {
    return join(this.dir, RESET_MARKER);
  }

  /** A resetTo that a crash interrupted: remove whatever segments are left and start empty at its offset. */
  private finishReset(): void {
    const offset = this.readOffsetFile(this.resetMarker());
    if (offset === undefined) throw new StorageError("CORRUPT_DATA", `unreadable reset marker ${this.resetMarker()}`, {});
    for (const name of this.fs.readdir(this.dir)) {
      if (/^\d{20}\.(log|index|timeindex)$/.test(name)) this.fs.unlink(join(this.dir, name));
    }
    this.fs.open(this.path(offset, "log"), "create").close();
    this.fs.fsyncDir(this.dir);
    this.recordLogStart(offset);
    this.fs.unlink(this.resetMarker());
    this.fs.fsyncDir(this.dir);
    this.log("warn", "finished a reset a crash interrupted", { dir: this.dir, offset });
  }

  /**
   * The first offset this log holds, as last recorded (created, reset, trimmed by retention): a log whose
   * first segment starts later lost its beginning. Undefined for a log from before the record existed.
   */
  private readLogStart(): number | undefined {
    const path = join(this.dir, LOG_START_FILE);
    if (!this.fs.exists(path)) return undefined;
    const offset = this.readOffsetFile(path);
    if (offset === undefined) this.log("warn", "unreadable log start record ignored", { file: path });
    return offset;
  }

  /** The offset a small record file (log-start, reset-to) holds as decimal text, or undefined if garbled. */
  private readOffsetFile(path: string): number | undefined {
    const text = new TextDecoder().decode(this.fs.readFile(path)).trim();
    return /^\d+$/.test(text) && Number.isSafeInteger(Number(text)) ? Number(text) : undefined;
  }

  /**
   * Durably (atomic replace, two fsyncs) when the start moves: retention, reset. A new log's start, or
   * an older log's adopted one, is written without an fsync: if a crash loses it, the next open takes
   * the first segment's base again, which is what it said. (Durable at creation too, 2,000 more fsyncs
   * per broker, creating and electing 1,000 partitions took 8.1 s; without them 6.1 s; before the record
   * existed 4.6 s: single runs of `bench scale --scale 0.2`.)
   */
  private recordLogStart(offset: number, durable = true): void {
    const path = join(this.dir, LOG_START_FILE);
    const bytes = new TextEncoder().encode(String(offset));
    if (durable) {
      writeFileAtomic(this.fs, path, bytes);
      return;
    }
    const h = this.fs.open(path, "create");
    try {
      h.write(bytes, 0);
      h.truncate(bytes.length);
    } finally {
      h.close();
    }
  }

  private recover(): void {
    if (this.fs.exists(this.resetMarker())) this.finishReset();
    const recorded = this.readLogStart();
    const bases = this.fs
      .readdir(this.dir)
      .map((n) => /^(\d{20})\.log$/.exec(n)?.[1])
      .filter((b): b is string => b !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
    const now = Date.now();
    if (bases.length === 0) {
      this.segments = [this.newSegment(recorded ?? 0, now)];
      if (recorded === undefined) this.recordLogStart(0, false);
      return;
    }
    const whole = new Set<Segment>(); // sealed segments whose index loaded: the index vouches for their size
    const rebuilt: Segment[] = []; // sealed segments indexed by a scan: their index files are written below
    const cutShort = new Set<Segment>(); // segments whose file lost its end: repaired into, not yet indexed
    for (let i = 0; i < bases.length; i++) {
      const baseOffset = bases[i]!;
      const isActive = i === bases.length - 1;
      const handle = this.fs.open(this.path(baseOffset, "log"), isActive ? "write" : "read");
      const seg: Segment = {
        baseOffset,
        nextOffset: baseOffset,
        sizeBytes: handle.sizeBytes(),
        lastRaftIndex: 0,
        maxTimestamp: -1,
        createdMs: now,
        sealed: !isActive,
        handle,
        writable: isActive,
        index: new SegmentIndex(),
        bytesSinceIndex: 0,
      };
      this.segments.push(seg);
      if (!isActive && this.loadIndex(seg)) {
        whole.add(seg);
        continue;
      }
      this.rescan(seg, isActive);
      if (!isActive) {
        rebuilt.push(seg);
        this.log("warn", "rebuilt missing or damaged segment index", { file: handle.path });
      }
    }
    // Damage running to the end of a sealed segment ends where the next segment begins.
    for (let i = 0; i + 1 < this.segments.length; i++) {
      const seg = this.segments[i]!;
      const next = this.segments[i + 1]!;
      for (const d of this.damaged) {
        if (d.file === seg.handle.path && d.toOffset === Infinity) {
          d.toOffset = next.baseOffset;
          seg.nextOffset = next.baseOffset;
          cutShort.add(seg);
        }
      }
    }
    if (recorded !== undefined) {
      // Retention records the new start before deleting: finish a deletion a crash interrupted.
      while (this.segments.length > 1 && this.segments[1]!.baseOffset <= recorded) this.dropSegment(this.segments.shift()!);
      // Segments missing from the start: an empty one at the recorded start, so the missing offsets
      // become a gap (below) and are repaired into it.
      if (this.segments[0]!.baseOffset > recorded) {
        const first = this.newSegment(recorded, now);
        first.sealed = true;
        this.segments.unshift(first);
      }
    } else {
      this.recordLogStart(this.segments[0]!.baseOffset, false);
    }
    // A segment that ends before the next begins lost batches: the missing offsets are a damaged range,
    // never served, and repaired from a peer like any other damage. Every other segment is still served.
    // Where the range goes depends on what was lost. A segment whose index loaded is whole, so the offsets
    // after it were in segment files now gone: they get an empty file of their own at their own base, the
    // layout the peers hold, rather than doubling the segment before them. A segment rebuilt by a scan may
    // have been cut short, and its missing tail is repaired into it; so is an empty one (such a file made
    // here by an earlier open, not yet repaired, is the file at that base even where an index vouches for
    // it: never a second segment at its base).
    for (let i = 0; i + 1 < this.segments.length; i++) {
      const seg = this.segments[i]!;
      const next = this.segments[i + 1]!;
      if (seg.nextOffset >= next.baseOffset) continue;
      let into = seg;
      if (whole.has(seg) && seg.sizeBytes > 0) {
        const path = this.path(seg.nextOffset, "log");
        assert(!this.segments.some((s) => s.handle.path === path), `a second segment for ${path}`);
        into = this.newSegment(seg.nextOffset, now);
        into.sealed = true;
        this.segments.splice(++i, 0, into);
      } else {
        cutShort.add(seg);
      }
      const d: DamagedRange = { file: into.handle.path, position: into.sizeBytes, fromOffset: seg.nextOffset, toOffset: next.baseOffset };
      this.damaged.push(d);
      this.log("error", "offsets missing between two segments: range will not be served", { ...d });
      into.nextOffset = next.baseOffset;
    }
    // Segments that overlap cannot both be right; the newest run is kept (no write path makes them).
    for (let i = this.segments.length - 1; i > 0; i--) {
      const prev = this.segments[i - 1]!;
      if (prev.nextOffset > this.segments[i]!.baseOffset) {
        const dropped = this.segments.splice(0, i);
        for (const s of dropped) this.dropSegment(s);
        this.log("warn", "dropped segments overlapping a newer one", { dir: this.dir, count: dropped.length });
        break;
      }
    }
    // A cut segment's index would vouch for the cut file as whole, and the next open would then put its
    // lost end in a file of its own: it is indexed on disk only once repaired (by the open after that).
    for (const seg of rebuilt) {
      if (cutShort.has(seg) || !this.segments.includes(seg)) continue;
      for (const [path, bytes] of this.indexFiles(seg.baseOffset, seg.index, seg)) writeFileDurable(this.fs, path, bytes);
    }
  }

  private loadIndex(seg: Segment): boolean {
    const ip = this.path(seg.baseOffset, "index");
    const tp = this.path(seg.baseOffset, "timeindex");
    if (!this.fs.exists(ip) || !this.fs.exists(tp)) return false;
    const loaded = SegmentIndex.decode(this.fs.readFile(ip), this.fs.readFile(tp), seg.baseOffset, seg.sizeBytes);
    if (!loaded) return false;
    seg.index = loaded.index;
    seg.nextOffset = loaded.summary.nextOffset;
    seg.lastRaftIndex = loaded.summary.lastRaftIndex;
    seg.maxTimestamp = loaded.summary.maxTimestamp;
    return true;
  }

  /**
   * Reads every batch of a segment, verifying each, and rebuilds its indexes. In the active segment a
   * damaged tail is cut; damage followed by good batches (or in a sealed segment) becomes a damaged range.
   */
  private rescan(seg: Segment, isActive: boolean): void {
    seg.index = new SegmentIndex();
    seg.bytesSinceIndex = 0;
    seg.nextOffset = seg.baseOffset;
    seg.maxTimestamp = -1;
    seg.lastRaftIndex = 0;
    const size = seg.sizeBytes;
    let pos = 0;
    let buf = new Uint8Array(0);
    let bufPos = 0; // file position of buf[0]
    const load = (at: number, need: number): void => {
      buf = new Uint8Array(Math.min(size - at, Math.max(SCAN_CHUNK_BYTES, need)));
      bufPos = at;
      const n = this.readAt(seg, buf, at);
      if (n < buf.length) buf = buf.subarray(0, n);
    };
    while (pos < size) {
      if (pos + BATCH_HEADER_BYTES > bufPos + buf.length) load(pos, BATCH_HEADER_BYTES);
      let view = viewOf(buf);
      let h = readBatchHeader(view, pos - bufPos);
      if (typeof h !== "string" && pos + h.sizeBytes > bufPos + buf.length && pos + h.sizeBytes <= size) {
        load(pos, h.sizeBytes);
        view = viewOf(buf);
        h = readBatchHeader(view, 0);
      }
      const problem =
        typeof h === "string"
          ? h
          : pos + h.sizeBytes > size
            ? "batch runs past the end of the file"
            : h.baseOffset !== seg.nextOffset
              ? `batch at offset ${h.baseOffset}, expected ${seg.nextOffset}`
              : !batchChecksumOk(buf, pos - bufPos, h)
                ? "checksum mismatch"
                : undefined;
      if (problem === undefined && typeof h !== "string") {
        this.indexBatch(seg, h, pos);
        pos += h.sizeBytes;
        continue;
      }
      // Is there a good batch right after the damaged one? Then it is damage in the middle, not a tail.
      const resume = typeof h === "string" ? undefined : this.goodBatchAt(seg, pos + h.sizeBytes, size);
      if (resume && resume.baseOffset > seg.nextOffset) {
        const d: DamagedRange = { file: seg.handle.path, position: pos, fromOffset: seg.nextOffset, toOffset: resume.baseOffset };
        this.damaged.push(d);
        this.log("error", "corrupt batch in partition log: range will not be served", { ...d, reason: problem });
        seg.index.addOffset(resume.baseOffset - seg.baseOffset, pos + (h as BatchHeader).sizeBytes);
        seg.bytesSinceIndex = 0;
        seg.nextOffset = resume.baseOffset;
        pos += (h as BatchHeader).sizeBytes;
        buf = new Uint8Array(0);
        continue;
      }
      if (isActive) {
        this.log("warn", "cut torn or corrupt tail of partition log", {
          file: seg.handle.path,
          position: pos,
          bytesCut: size - pos,
          reason: problem,
        });
        seg.handle.truncate(pos);
        seg.sizeBytes = pos;
      } else {
        const d: DamagedRange = { file: seg.handle.path, position: pos, fromOffset: seg.nextOffset, toOffset: Infinity };
        this.damaged.push(d);
        this.log("error", "corrupt batch in sealed segment: range will not be served", { ...d, reason: problem });
        // Where the damaged range ends is the next segment's base: set once that is known, in recover().
      }
      break;
    }
  }

  private goodBatchAt(seg: Segment, pos: number, size: number): BatchHeader | undefined {
    if (pos + BATCH_HEADER_BYTES > size) return undefined;
    const hdr = new Uint8Array(BATCH_HEADER_BYTES);
    if (this.readAt(seg, hdr, pos) !== BATCH_HEADER_BYTES) return undefined;
    const h = readBatchHeader(viewOf(hdr), 0);
    if (typeof h === "string" || pos + h.sizeBytes > size) return undefined;
    const whole = new Uint8Array(h.sizeBytes);
    this.readAt(seg, whole, pos);
    return batchChecksumOk(whole, 0, h) ? h : undefined;
  }

  // ------------------------------------------------------------------------------------------------

  async close(): Promise<void> {
    if (this.closed) return;
    await this.sealing.catch(() => {});
    this.closed = true;
    for (const s of this.segments) s.handle.close();
  }

  /** Closes and deletes the partition's directory. */
  async remove(): Promise<void> {
    await this.close();
    try {
      this.fs.rmdir(this.dir);
    } catch (err) {
      throw storageErrorFromOs(err, "removing", this.dir);
    }
  }

  private active(): Segment {
    const s = this.segments[this.segments.length - 1];
    assert(s, "a partition log always has an active segment");
    return s;
  }

  private path(baseOffset: number, ext: "log" | "index" | "timeindex"): string {
    return join(this.dir, `${fileBase(baseOffset)}.${ext}`);
  }

  private checkWritable(): void {
    if (this.closed) throw new StorageError("IO", `partition log ${this.dir} is closed`);
    if (this.failure) throw this.failure;
  }

  /** A failed write stops appends for good: what the file holds past the last good batch is unknown. */
  private fail(err: unknown, what: string): StorageError {
    if (err instanceof StorageError) return err; // refused, not failed: the files are as they were
    if (!this.failure) {
      this.failure = storageErrorFromOs(err, what, this.dir);
      this.log("error", "partition log stopped accepting writes", { dir: this.dir, code: this.failure.code, error: this.failure.message });
    }
    return this.failure;
  }
}

/**
 * Splits raw batches, checking each one's checksum, that offsets follow from `baseOffset`, and that raft
 * indexes increase.
 */
function splitVerified(data: Uint8Array, baseOffset: number): Uint8Array[] {
  const view = viewOf(data);
  const out: Uint8Array[] = [];
  let pos = 0;
  let expect = baseOffset;
  let raftIndex = -1;
  while (pos < data.length) {
    const h = readBatchHeader(view, pos);
    if (
      typeof h === "string" ||
      pos + h.sizeBytes > data.length ||
      !batchChecksumOk(data, pos, h) ||
      h.baseOffset !== expect ||
      h.raftIndex <= raftIndex
    ) {
      throw new StorageError("CORRUPT_DATA", `bad batch in fragment at byte ${pos}`, { position: pos, baseOffset: expect });
    }
    out.push(data.subarray(pos, pos + h.sizeBytes));
    raftIndex = h.raftIndex;
    expect = h.baseOffset + h.recordCount;
    pos += h.sizeBytes;
  }
  return out;
}
