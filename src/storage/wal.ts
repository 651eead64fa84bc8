// One write-ahead log for every Raft group of a process. Appends are buffered in memory; sync() writes
// them with one positional write and makes them durable with one fdatasync, whatever the number of
// groups: fdatasync calls, not bytes, are what the disk runs out of.
//
// Segment files are preallocated (zero-filled) and reused once every record in them is durable
// elsewhere, because overwriting allocated blocks lets fdatasync skip the metadata update. Each segment
// opens with a checkpoint (hard state, snapshot, release point of every live group), so a prefix of
// segments can be recycled without losing the latest of those.
import { join } from "node:path";
import { entryBefore, type Entry, type HardState, type SnapshotMeta } from "../raft/types";
import { StorageError, storageErrorFromOs } from "./errors";
import { realFileLayer } from "./file-layer";
import { GrowableBuffer } from "./growable-buffer";
import type {
  FileHandle,
  FileLayer,
  FsyncPolicy,
  RecoveredGroup,
  StorageLogger,
  WalCut,
  WalOptions,
  WalStats,
} from "./types";
import {
  END_MARKER_BYTES,
  RECORD_BYTES_MAX,
  RECORD_HEADER_BYTES,
  RecordType,
  decodeEntry,
  decodeHardState,
  decodeRecord,
  decodeSnapshot,
  encodeEntry,
  encodeHardState,
  encodeRecord,
  encodeSnapshot,
  entryRecordBytes,
  readU64,
  saltForSegment,
} from "./wal-record";

const SEGMENT_HEADER_BYTES = 32;
const SEGMENT_MAGIC = 0x4757414c; // "GWAL"
const SEGMENT_VERSION = 1;
const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;
const SEGMENT_BYTES_MIN = 4096;
const ZERO_CHUNK_BYTES = 1024 * 1024;
/** Zero-filled spares kept ready (made in the background from start-up on), so no sync waits for one. */
const SPARES_READY = 1;
const SPARE_SYNC_BYTES = 4 * ZERO_CHUNK_BYTES; // a spare being zero-filled is synced this often
/** A torn hard state naming a term further ahead than this is read as garbage (terms move up by elections). */
const TORN_TERM_AHEAD_MAX = 1_000_000;

interface GroupState {
  hardState?: HardState;
  snapshot?: SnapshotMeta;
  released: number;
  lastIndex: number;
  /** Term of the entry at lastIndex (the snapshot's when it is the snapshot's index; 0 when none). */
  lastTerm: number;
  /** The newest entry let go by drop() (index 0: none); it matters while above the snapshot. */
  dropped: { term: number; index: number };
}

interface Segment {
  seq: number;
  path: string;
  handle?: FileHandle; // opened when first written or at recovery
  /** Highest entry index per group held in this segment: it is needed until all are released. */
  needs: Map<number, number>;
}

/** Records appended since the last write, destined for one segment starting at `startPos`. */
interface PendingChunk {
  seq: number;
  startPos: number;
  buf: GrowableBuffer;
}

function segmentName(seq: number): string {
  return `${String(seq).padStart(16, "0")}.wal`;
}

function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new Error(`wal invariant: ${msg}`);
}

function encodeSegmentHeader(seq: number): Uint8Array {
  const b = new Uint8Array(SEGMENT_HEADER_BYTES);
  const v = new DataView(b.buffer);
  v.setUint32(0, SEGMENT_MAGIC, true);
  v.setUint32(4, SEGMENT_VERSION, true);
  v.setBigUint64(8, BigInt(seq), true);
  v.setUint32(28, Bun.hash.crc32(b.subarray(0, 28)), true);
  return b;
}

/** The sequence number in a segment header, or undefined if the header is not a valid one. */
function readSegmentHeader(data: Uint8Array): number | undefined {
  if (data.length < SEGMENT_HEADER_BYTES) return undefined;
  const v = new DataView(data.buffer, data.byteOffset, SEGMENT_HEADER_BYTES);
  if (v.getUint32(0, true) !== SEGMENT_MAGIC || v.getUint32(4, true) !== SEGMENT_VERSION) return undefined;
  if (Bun.hash.crc32(data.subarray(0, 28)) !== v.getUint32(28, true)) return undefined;
  return Number(v.getBigUint64(8, true));
}

export class Wal {
  /** What was on disk at open, per group. Read it once to restart the groups. */
  readonly recovered = new Map<number, RecoveredGroup>();
  /** What recovery cut off (torn tails are expected after a crash; midLog ones mean lost records). */
  readonly cuts: WalCut[] = [];

  private readonly fs: FileLayer;
  private readonly log: StorageLogger;
  private readonly segmentBytes: number;
  private readonly spareSegmentsMax: number;
  private readonly inlineFsyncWhenAlone: boolean;
  private readonly inlineFsyncMaxBytes: number;
  private readonly inlineFsyncIdleMs: number;
  private lastRoundEndMs = -Infinity;
  private readonly groups = new Map<number, GroupState>();
  /** Groups whose carry is under way (reading back): one at a time each. */
  private readonly carrying = new Set<number>();
  private readonly segments: Segment[] = []; // oldest first; the last is being written
  private readonly spares: string[] = []; // paths of released files, ready for reuse
  private pending: PendingChunk[];
  private failure: StorageError | undefined;
  private closed = false;

  private round: Promise<void> | undefined; // the write+fsync in progress
  private nextRound: Promise<void> | undefined; // callers arriving during `round` share this one
  private roundHasWritten = false;
  private roundCallers = 0; // sync() callers waiting on `round`
  private nextRoundCallers = 0;
  // Whether every caller of `round` / `nextRound` let its fdatasync run inline (see sync()).
  private roundMayInline = true;
  private nextRoundMayInline = true;
  private lastRoundCallers = 0;
  private unsynced = new Set<FileHandle>(); // written but not fdatasynced (interval/never)
  private intervalTimer: ReturnType<typeof setTimeout> | undefined;
  private lastFsyncMs = -Infinity;
  private writtenSeq = 0; // segment of the last write
  private durableSeq = 0; // highest segment whose checkpoint is durable (recycling waits for it)
  private spareSeq = 0;
  private preparingSpare = false;

  private readonly counters = {
    fsyncs: 0,
    inlineFsyncs: 0,
    syncs: 0,
    bytesWritten: 0,
    recordsWritten: 0,
    recycledSegments: 0,
    createdSegments: 0,
  };

  private constructor(
    private readonly dir: string,
    readonly policy: FsyncPolicy,
    opts: WalOptions,
  ) {
    this.fs = opts.fs ?? realFileLayer;
    this.log = opts.log ?? (() => {});
    this.segmentBytes = opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    this.spareSegmentsMax = opts.spareSegmentsMax ?? 4;
    this.inlineFsyncWhenAlone = opts.inlineFsyncWhenAlone ?? true;
    this.inlineFsyncMaxBytes = opts.inlineFsyncMaxBytes ?? Infinity;
    this.inlineFsyncIdleMs = opts.inlineFsyncIdleMs ?? 0;
    assert(this.segmentBytes >= SEGMENT_BYTES_MIN, `segmentBytes must be >= ${SEGMENT_BYTES_MIN}`);
    if (typeof policy === "object") assert(policy.intervalMs >= 1, "intervalMs must be >= 1");
    this.pending = [];
  }

  static async open(opts: WalOptions): Promise<Wal> {
    const wal = new Wal(opts.dir, opts.fsync, opts);
    try {
      wal.fs.mkdir(opts.dir);
      wal.recover();
    } catch (err) {
      wal.closeHandles();
      throw storageErrorFromOs(err, "opening WAL in", opts.dir);
    }
    wal.prepareSpare();
    return wal;
  }

  // ------------------------------------------------------------------------------------------------
  // Appending (buffered)

  appendEntries(group: number, entries: Entry[]): void {
    this.writeEntries(group, entries, false);
  }

  /**
   * `again`: the entries are the group's own, written again as they are (carry). No truncation record goes
   * before them: replay takes an entry it already holds with the same term as that entry, so a copy cut
   * short by a crash leaves the log as it was instead of cutting it where the copy stopped.
   */
  private writeEntries(group: number, entries: Entry[], again: boolean): void {
    this.checkWritable();
    if (entries.length === 0) return;
    assertGroup(group);
    const g = this.group(group);
    const first = entries[0]!;
    assert(first.index >= 1, `entry index ${first.index} < 1`);
    if (first.index <= g.lastIndex && !again) {
      this.encode(RecordType.Truncate, group, (buf, salt) =>
        encodeRecord(buf, salt, RecordType.Truncate, group, 0, first.index, 0),
      );
    }
    // Entries written again at or below the release point (a replica that dropped its entries, rejoining
    // from its snapshot) are not covered by that release: they are needed until released again.
    if (first.index <= g.released) g.released = first.index - 1;
    let expect = first.index;
    for (const e of entries) {
      assert(e.index === expect, `entries not contiguous: ${e.index} after ${expect - 1}`);
      expect++;
      this.encode(RecordType.Entry, group, (buf, salt) => encodeEntry(buf, salt, group, e), entryRecordBytes(e));
      const seg = this.pendingTail().seq;
      const needs = this.segmentNeeds(seg);
      needs.set(group, Math.max(needs.get(group) ?? 0, e.index));
    }
    g.lastIndex = expect - 1;
    g.lastTerm = entries[entries.length - 1]!.term;
  }

  setHardState(group: number, hs: HardState): void {
    this.checkWritable();
    assertGroup(group);
    this.group(group).hardState = { ...hs };
    this.encode(RecordType.HardState, group, (buf, salt) => encodeHardState(buf, salt, group, hs));
  }

  setSnapshot(group: number, meta: SnapshotMeta): void {
    this.checkWritable();
    assertGroup(group);
    const g = this.group(group);
    g.snapshot = meta;
    if (meta.index >= g.lastIndex) g.lastTerm = meta.term;
    g.lastIndex = Math.max(g.lastIndex, meta.index);
    this.encode(RecordType.Snapshot, group, (buf, salt) => encodeSnapshot(buf, salt, group, meta));
  }

  /** The group's records up to `index` are durable elsewhere (its partition log was flushed). */
  release(group: number, index: number): void {
    this.checkWritable();
    const g = this.groups.get(group);
    if (!g || index <= g.released) return;
    g.released = index;
    this.encode(RecordType.Release, group, (buf, salt) => encodeRecord(buf, salt, RecordType.Release, group, 0, index, 0));
  }

  /**
   * Lets go of every entry of the group although nothing else holds them durably: their partition can no
   * longer be written and its replica leaves the group, and its records must not keep every later segment
   * from reuse (segments are reused as a prefix only) until the disk fills. Term, vote and snapshot stay.
   * Resolves once the drop is durable, and only then may the segments holding the entries be reused.
   * Until a snapshot at or past the dropped index is stored, recovery reports the group `dropped`, with
   * the term and index of the newest entry let go.
   */
  async drop(group: number): Promise<void> {
    this.checkWritable();
    const g = this.groups.get(group);
    if (!g || g.lastIndex <= Math.max(g.released, g.snapshot?.index ?? 0)) return; // all durable elsewhere
    const index = g.lastIndex;
    const term = g.lastTerm;
    // The drop a replica's votes must respect is the later in Raft's log order, not the higher index.
    if (entryBefore(g.dropped, { term, index })) g.dropped = { term, index };
    this.encode(RecordType.Drop, group, (buf, salt) => encodeRecord(buf, salt, RecordType.Drop, group, term, index, 0));
    this.encode(RecordType.Release, group, (buf, salt) => encodeRecord(buf, salt, RecordType.Release, group, 0, index, 0));
    await this.sync();
    // The release takes effect only now: a segment reused before the drop was durable could take entries
    // with it that a restart would then miss without knowing they were let go.
    if (this.groups.get(group) === g && g.lastIndex === index) g.released = Math.max(g.released, index);
  }

  /**
   * Writes the group's records that nothing else holds (its entries past the release point) again at the
   * head of the WAL, so the older segments holding them may be reused. For a group that can neither
   * checkpoint (its partition log cannot be written) nor drop its entries (no other replica holds them: a
   * lone replica), else its first unreleased entry holds every later segment until the disk is full.
   * The entries are read back from the segment files and written with no truncate record before them:
   * replay takes an entry it holds already with the same term as that entry, so an older copy still on
   * disk changes nothing, and neither does a copy cut short by a crash (the older one is still there:
   * the segments holding it are released only once the copy is durable).
   * Resolves true once the copy is durable and the older segments no longer wait for the group; false
   * when there is nothing to move or the copy would not move the group's records off the oldest segment
   * (they already reach the segment being written: carrying them again would only rewrite them).
   */
  async carry(group: number): Promise<boolean> {
    this.checkWritable();
    if (this.carrying.has(group)) return false;
    this.carrying.add(group);
    try {
      return await this.carryOnce(group);
    } finally {
      this.carrying.delete(group);
    }
  }

  private async carryOnce(group: number): Promise<boolean> {
    const g = this.groups.get(group);
    const from = g ? Math.max(g.released, g.snapshot?.index ?? 0) + 1 : 0;
    if (!g || g.lastIndex < from) return false;
    const newest = this.segments[this.segments.length - 1];
    if (newest === undefined || (newest.needs.get(group) ?? 0) >= from) return false;
    await this.sync(); // the group's newest records are in the files before they are read back
    if (this.groups.get(group) !== g || g.lastIndex < from) return false;
    const copy = new ReplayGroup();
    // Read on the thread pool (segments are up to 64 MiB each): the broker keeps serving meanwhile. The
    // segments holding the group stay while it needs them, so the list taken now stays valid.
    const holding = this.segments.filter((seg) => (seg.needs.get(group) ?? 0) >= from);
    for (const seg of holding) {
      const data = await this.fs.readFileAsync(seg.path);
      const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
      const salt = saltForSegment(seg.seq);
      for (let pos = SEGMENT_HEADER_BYTES; ; ) {
        const d = decodeRecord(data, view, pos, salt);
        if (!d.ok || d.record.type === RecordType.Seal) break;
        pos += d.len;
        const r = d.record;
        if (r.group !== group) continue;
        if (r.type === RecordType.Entry) copy.append(decodeEntry(r), seg.path, pos - d.len);
        else if (r.type === RecordType.Truncate) copy.truncateFrom(r.index);
      }
    }
    // Appends since the sync (none are expected: the group takes no writes) would make the copy stale.
    if (this.groups.get(group) !== g) return false; // removed while we read
    const entries = copy.entriesFrom(from);
    const last = entries[entries.length - 1];
    if (entries[0]?.index !== from || last?.index !== g.lastIndex || last.term !== g.lastTerm) {
      this.log("warn", "WAL: could not read back a group's unreleased entries; its segments stay", { group, from, lastIndex: g.lastIndex });
      return false;
    }
    this.checkWritable();
    const firstSeq = this.pendingTail().seq;
    this.writeEntries(group, entries, true);
    await this.sync();
    // The copy is durable: the segments before it need nothing of this group any more.
    for (const seg of this.segments) if (seg.seq < firstSeq) seg.needs.delete(group);
    this.recycleReleased();
    return true;
  }

  removeGroup(group: number): void {
    this.checkWritable();
    if (!this.groups.delete(group)) return;
    this.encode(RecordType.RemoveGroup, group, (buf, salt) =>
      encodeRecord(buf, salt, RecordType.RemoveGroup, group, 0, 0, 0),
    );
  }

  /**
   * Groups whose unreleased entries keep the oldest segment from being reused: flush just these
   * partitions (then release) to shorten the WAL, rather than fdatasyncing every partition.
   */
  pinningGroups(): number[] {
    const oldest = this.segments.length > 1 ? this.segments[0] : undefined;
    if (!oldest) return [];
    const out: number[] = [];
    for (const [group, maxIndex] of oldest.needs) {
      const g = this.groups.get(group);
      if (g && maxIndex > g.released && maxIndex > (g.snapshot?.index ?? 0)) out.push(group);
    }
    return out;
  }

  lastIndex(group: number): number {
    return this.groups.get(group)?.lastIndex ?? 0;
  }

  // ------------------------------------------------------------------------------------------------
  // Durability

  /**
   * Writes everything appended so far in one write and, under "always", makes it durable with one
   * fdatasync (two when a segment boundary was crossed). Callers that arrive while a round is running
   * share the next round.
   *
   * `mayInline: false` keeps this caller's round off the event loop even when it waits alone: for a
   * caller with something to do meanwhile (a leader, whose followers' answers can commit its entries
   * while its own fdatasync runs). A round runs inline only if every caller that joined it allowed it.
   */
  sync(opts: { mayInline?: boolean } = {}): Promise<void> {
    const mayInline = opts.mayInline ?? true;
    if (this.failure) return Promise.reject(this.failure);
    if (this.nextRound) {
      this.nextRoundCallers++;
      this.nextRoundMayInline &&= mayInline;
      return this.nextRound;
    }
    if (this.round && !this.roundHasWritten) {
      this.roundCallers++;
      this.roundMayInline &&= mayInline;
      return this.round; // it has not taken the pending records yet
    }
    if (this.round) {
      this.nextRoundCallers = 1;
      this.nextRoundMayInline = mayInline;
      if (!this.nextRound) {
        this.nextRound = this.round.then(
          () => this.startRound(),
          () => this.startRound(),
        );
      }
      return this.nextRound;
    }
    this.nextRoundMayInline = mayInline;
    return this.startRound();
  }

  private startRound(): Promise<void> {
    this.nextRound = undefined;
    this.roundCallers = Math.max(1, this.nextRoundCallers);
    this.nextRoundCallers = 0;
    this.roundMayInline = this.nextRoundMayInline;
    this.nextRoundMayInline = true;
    if (this.failure) return Promise.reject(this.failure);
    const r = this.runRound().finally(() => {
      if (this.round === r) this.round = undefined;
    });
    this.round = r;
    return r;
  }

  private async runRound(): Promise<void> {
    // Let every caller resuming from the previous round append first, so one round carries them all.
    this.roundHasWritten = false;
    // After a round that carried several callers, let all of them resume and append before writing,
    // so one round carries them all; a lone caller is not made to wait for company.
    if (this.lastRoundCallers > 1) await new Promise<void>((resolve) => setImmediate(resolve));
    this.roundHasWritten = true;
    this.lastRoundCallers = this.roundCallers;
    const idleMs = performance.now() - this.lastRoundEndMs;
    const bytesBefore = this.counters.bytesWritten;
    const touched = this.writePending();
    try {
      if (this.policy === "always") {
        // One caller alone has nothing to overlap with: fdatasync inline and skip the thread-pool hop.
        const inline =
          this.inlineFsyncWhenAlone &&
          this.roundMayInline &&
          this.roundCallers <= 1 &&
          touched.length === 1 &&
          this.counters.bytesWritten - bytesBefore <= this.inlineFsyncMaxBytes &&
          idleMs >= this.inlineFsyncIdleMs;
        if (inline) this.datasyncInline(touched[0]!);
        else await this.datasyncAll(touched);
      } else if (this.policy !== "never") {
        for (const h of touched) this.unsynced.add(h);
        const dueInMs = this.lastFsyncMs + this.policy.intervalMs - performance.now();
        if (dueInMs <= 0) await this.datasyncAll([...this.unsynced]);
        else this.scheduleIntervalFsync(dueInMs);
      } else {
        this.durableSeq = this.writtenSeq;
      }
    } catch (err) {
      throw this.fail(err, "fdatasync of WAL in");
    }
    this.lastRoundEndMs = performance.now();
    this.recycleReleased();
    this.prepareSpare();
  }

  private async datasyncAll(handles: FileHandle[]): Promise<void> {
    const seq = this.writtenSeq;
    this.unsynced.clear();
    if (handles.length === 0) return;
    this.lastFsyncMs = performance.now();
    await Promise.all(handles.map((h) => h.datasync()));
    this.counters.fsyncs += handles.length;
    this.durableSeq = Math.max(this.durableSeq, seq);
  }

  private datasyncInline(h: FileHandle): void {
    this.unsynced.clear();
    this.lastFsyncMs = performance.now();
    h.datasyncSync();
    this.counters.fsyncs++;
    this.counters.inlineFsyncs++;
    this.durableSeq = Math.max(this.durableSeq, this.writtenSeq);
  }

  private scheduleIntervalFsync(dueInMs: number): void {
    if (this.intervalTimer) return;
    this.intervalTimer = setTimeout(() => {
      this.intervalTimer = undefined;
      if (this.closed || this.failure || this.unsynced.size === 0) return;
      this.datasyncAll([...this.unsynced]).then(
        () => this.recycleReleased(),
        (err) => this.fail(err, "fdatasync of WAL in"),
      );
    }, Math.ceil(dueInMs));
    this.intervalTimer.unref?.();
  }

  /** Writes every pending chunk (page cache only); returns the handles written. */
  private writePending(): FileHandle[] {
    const touched: FileHandle[] = [];
    const chunks = this.pending;
    if (chunks.length === 0 || (chunks.length === 1 && chunks[0]!.buf.length === 0)) return touched;
    const last = chunks[chunks.length - 1]!;
    try {
      for (const c of chunks) {
        if (c.buf.length === 0) continue;
        const seg = this.segmentForWrite(c.seq);
        const h = seg.handle!;
        // The zero end marker rides in the same write, so the byte after the last record is 0 unless torn.
        const at = c.buf.reserve(END_MARKER_BYTES);
        c.buf.bytes.fill(0, at, at + END_MARKER_BYTES);
        h.write(c.buf.bytes.subarray(0, c.buf.length), c.startPos);
        c.buf.length -= END_MARKER_BYTES;
        this.counters.bytesWritten += c.buf.length + END_MARKER_BYTES;
        touched.push(h);
      }
    } catch (err) {
      throw this.fail(err, "writing WAL in");
    }
    this.counters.syncs++;
    this.writtenSeq = last.seq;
    // Keep the last chunk's buffer for the next round: the write above was synchronous.
    const buf = last.buf;
    const nextPos = last.startPos + buf.length;
    buf.reset();
    this.pending = [{ seq: last.seq, startPos: nextPos, buf }];
    return touched;
  }

  // ------------------------------------------------------------------------------------------------
  // Encoding and segment rolling

  private pendingTail(): PendingChunk {
    const tail = this.pending[this.pending.length - 1];
    assert(tail, "no pending chunk");
    return tail;
  }

  /** Encodes one record into the pending chunk, rolling to a new segment first if it would not fit. */
  private encode(
    _type: RecordType,
    _group: number,
    write: (buf: GrowableBuffer, salt: number) => number,
    sizeHint = RECORD_HEADER_BYTES + 64,
  ): void {
    let tail = this.pendingTail();
    const end = tail.startPos + tail.buf.length;
    const fresh = end <= SEGMENT_HEADER_BYTES;
    if (!fresh && end + sizeHint + RECORD_HEADER_BYTES + END_MARKER_BYTES > this.segmentBytes) {
      this.rollPending();
      tail = this.pendingTail();
    }
    write(tail.buf, saltForSegment(tail.seq));
    this.counters.recordsWritten++;
  }

  /** Seals the pending segment and starts the next one with a checkpoint of every live group. */
  private rollPending(): void {
    const tail = this.pendingTail();
    const salt = saltForSegment(tail.seq);
    encodeRecord(tail.buf, salt, RecordType.Seal, 0, 0, 0, 0);
    const seq = tail.seq + 1;
    const next: PendingChunk = { seq, startPos: SEGMENT_HEADER_BYTES, buf: new GrowableBuffer() };
    this.pending.push(next);
    this.segmentNeeds(seq);
    const nsalt = saltForSegment(seq);
    for (const [group, g] of this.groups) {
      if (g.snapshot) encodeSnapshot(next.buf, nsalt, group, g.snapshot);
      if (g.hardState) encodeHardState(next.buf, nsalt, group, g.hardState);
      if (g.released > 0) encodeRecord(next.buf, nsalt, RecordType.Release, group, 0, g.released, 0);
      if (g.dropped.index > 0) encodeRecord(next.buf, nsalt, RecordType.Drop, group, g.dropped.term, g.dropped.index, 0);
    }
  }

  private segmentNeeds(seq: number): Map<number, number> {
    const last = this.segments[this.segments.length - 1];
    if (last && last.seq === seq) return last.needs; // the common case, on every appended entry
    let seg = this.segments.find((s) => s.seq === seq);
    if (!seg) {
      seg = { seq, path: join(this.dir, segmentName(seq)), needs: new Map() };
      this.segments.push(seg);
    }
    return seg.needs;
  }

  /** The segment's file, open and headed with its sequence: a reused spare or a new zero-filled file. */
  private segmentForWrite(seq: number): Segment {
    const seg = this.segments.find((s) => s.seq === seq);
    assert(seg, `no segment ${seq}`);
    if (seg.handle) return seg;
    const spare = this.spares.shift();
    if (spare !== undefined) {
      this.fs.rename(spare, seg.path);
      seg.handle = this.fs.open(seg.path, "write");
      this.counters.recycledSegments++;
    } else {
      seg.handle = this.createZeroFilled(seg.path);
    }
    seg.handle.write(encodeSegmentHeader(seq), 0);
    this.fs.fsyncDir(this.dir);
    return seg;
  }

  /**
   * Keeps SPARES_READY zero-filled spares ready, made in the background a chunk per event-loop turn, so a sync that
   * crosses into a new segment reuses it instead of writing 64 MiB of zeros while every caller waits.
   */
  private prepareSpare(): void {
    if (this.preparingSpare || this.spares.length >= SPARES_READY || this.closed || this.failure) return;
    this.preparingSpare = true;
    const path = join(this.dir, `spare-${++this.spareSeq}.wal`);
    void (async () => {
      let h: FileHandle | undefined;
      try {
        h = this.fs.open(`${path}.tmp`, "create");
        const zeros = new Uint8Array(Math.min(ZERO_CHUNK_BYTES, this.segmentBytes));
        for (let pos = 0; pos < this.segmentBytes; pos += zeros.length) {
          if (this.closed) throw new Error("closed");
          h.write(zeros.subarray(0, Math.min(zeros.length, this.segmentBytes - pos)), pos);
          // Synced as it goes: 64 MiB of zeros synced at the end was one burst that held every WAL
          // fdatasync on the disk for ~200 ms (cold cluster, 1 KiB window 256: p999 146-224 -> 42 ms).
          if ((pos + zeros.length) % SPARE_SYNC_BYTES === 0) await h.datasync();
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
        await h.datasync();
        h.close();
        h = undefined;
        if (this.closed) throw new Error("closed");
        this.fs.rename(`${path}.tmp`, path);
        this.fs.fsyncDir(this.dir);
        this.spares.push(path);
        this.counters.createdSegments++;
        this.preparingSpare = false;
        this.prepareSpare(); // the next one, while fewer than SPARES_READY are ready
      } catch {
        // A spare is an optimisation: on failure the next segment is zero-filled inline, as before.
        this.preparingSpare = false;
        h?.close();
        try {
          this.fs.unlink(`${path}.tmp`);
        } catch {
          // already gone
        }
      }
    })();
  }

  private createZeroFilled(path: string): FileHandle {
    const h = this.fs.open(path, "create");
    const zeros = new Uint8Array(Math.min(ZERO_CHUNK_BYTES, this.segmentBytes));
    for (let pos = 0; pos < this.segmentBytes; pos += zeros.length) {
      h.write(zeros.subarray(0, Math.min(zeros.length, this.segmentBytes - pos)), pos);
    }
    h.datasyncSync(); // the allocation itself must be durable, or later fdatasyncs pay for it
    this.counters.createdSegments++;
    return h;
  }

  /** Recycles the oldest segments whose every entry is durable elsewhere (prefix only: truncations stay). */
  private recycleReleased(): void {
    if (this.failure || this.closed) return;
    try {
      while (this.segments.length > 1) {
        const seg = this.segments[0]!;
        // The checkpoint of a later segment must be durable before this one's hard states may go.
        if (seg.seq >= this.durableSeq) return;
        for (const [group, maxIndex] of seg.needs) {
          const g = this.groups.get(group);
          if (g && maxIndex > g.released && maxIndex > (g.snapshot?.index ?? 0)) return;
        }
        this.segments.shift();
        seg.handle?.close();
        if (this.spares.length < this.spareSegmentsMax) {
          const sparePath = join(this.dir, `spare-${++this.spareSeq}.wal`);
          this.fs.rename(seg.path, sparePath);
          this.spares.push(sparePath);
        } else {
          this.fs.unlink(seg.path);
        }
      }
    } catch (err) {
      throw this.fail(err, "recycling WAL segment in");
    }
  }

  // ------------------------------------------------------------------------------------------------
  // Recovery

  private recover(): void {
    const names = this.fs.readdir(this.dir).sort();
    const segFiles: { seq: number; path: string }[] = [];
    for (const name of names) {
      const path = join(this.dir, name);
      const m = /^(\d{16})\.wal$/.exec(name);
      if (m) segFiles.push({ seq: Number(m[1]), path });
      else if (/^spare-\d+\.wal$/.test(name)) this.spares.push(path);
      else if (/^spare-\d+\.wal\.tmp$/.test(name)) this.fs.unlink(path); // a spare being made when we stopped
    }
    for (const p of this.spares) {
      const n = Number(/spare-(\d+)/.exec(p)?.[1] ?? 0);
      this.spareSeq = Math.max(this.spareSeq, n);
    }
    const replay = new Replay();
    let writeSeq = 0;
    let writePos = SEGMENT_HEADER_BYTES;
    for (let i = 0; i < segFiles.length; i++) {
      const { seq, path } = segFiles[i]!;
      const data = this.fs.readFile(path);
      if (readSegmentHeader(data) !== seq) {
        // Renamed for reuse but never headed: nothing in it counts.
        const sparePath = join(this.dir, `spare-${++this.spareSeq}.wal`);
        this.fs.rename(path, sparePath);
        this.spares.push(sparePath);
        continue;
      }
      const isLast = i === segFiles.length - 1;
      const seg: Segment = { seq, path, needs: new Map() };
      this.segments.push(seg);
      const end = this.replaySegment(data, seq, path, isLast, replay, seg);
      writeSeq = seq;
      writePos = end;
    }
    const torn = this.cuts.at(-1);
    for (const [group, g] of replay.groups) {
      const result = g.result();
      if (torn && !torn.midLog && torn.record?.group === group) {
        Object.assign(result, tornRecordOf(torn.record, result));
      }
      this.recovered.set(group, result);
      this.groups.set(group, {
        hardState: g.hardState,
        snapshot: g.snapshot,
        released: g.released,
        lastIndex: g.lastIndex(),
        lastTerm: g.lastTerm(),
        dropped: g.dropped,
      });
    }
    if (this.segments.length === 0) {
      writeSeq = 1;
      writePos = SEGMENT_HEADER_BYTES;
      this.segmentNeeds(1);
    } else {
      this.segments[this.segments.length - 1]!.handle = this.fs.open(this.segments[this.segments.length - 1]!.path, "write");
    }
    this.durableSeq = writeSeq;
    this.writtenSeq = writeSeq;
    this.pending = [{ seq: writeSeq, startPos: writePos, buf: new GrowableBuffer() }];
    // Segments whose needs were met before the crash are recycled at the first sync.
  }

  /** Replays one segment's records; returns the position after the last valid one. */
  private replaySegment(data: Uint8Array, seq: number, path: string, isLast: boolean, replay: Replay, seg: Segment): number {
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const salt = saltForSegment(seq);
    let pos = SEGMENT_HEADER_BYTES;
    for (;;) {
      // Fast path for entry records, the bulk of any WAL: verified and replayed without temporary objects.
      const len = pos + 4 <= data.length ? view.getUint32(pos, true) : 0;
      if (
        len > RECORD_HEADER_BYTES &&
        len <= RECORD_BYTES_MAX &&
        pos + len <= data.length &&
        data[pos + 28] === RecordType.Entry &&
        Bun.hash.crc32(data.subarray(pos + 8, pos + len), salt) === view.getUint32(pos + 4, true)
      ) {
        const group = view.getUint32(pos + 8, true);
        const index = readU64(view, pos + 20);
        const had = seg.needs.get(group);
        if (had === undefined || index > had) seg.needs.set(group, index);
        const entry: Entry = { term: readU64(view, pos + 12), index, type: data[pos + 29]!, data: data.subarray(pos + 30, pos + len) };
        replay.appendEntry(group, entry);
        pos += len;
        continue;
      }
      const d = decodeRecord(data, view, pos, salt);
      if (!d.ok) {
        if (d.end && isLast) return pos;
        // Damage: a later valid record (or a later segment) means records were lost, not just a torn tail.
        let midLog = !isLast;
        if (!d.end && pos + 4 <= data.length) {
          const len = view.getUint32(pos, true);
          if (len >= RECORD_HEADER_BYTES && pos + len < data.length) {
            const after = decodeRecord(data, view, pos + len, salt);
            if (after.ok) midLog = true;
          }
        }
        const cut: WalCut = { file: path, position: pos, reason: d.reason, midLog };
        const len = pos + 4 <= data.length ? view.getUint32(pos, true) : 0;
        if (len >= RECORD_HEADER_BYTES && len <= RECORD_BYTES_MAX && pos + RECORD_HEADER_BYTES <= data.length) {
          cut.record = { type: data[pos + 28]!, group: view.getUint32(pos + 8, true), term: readU64(view, pos + 12), index: readU64(view, pos + 20) };
        }
        this.cuts.push(cut);
        this.log(midLog ? "error" : "warn", midLog ? "WAL corruption: records lost" : "WAL torn tail cut", { ...cut });
        if (midLog) replay.markAllDamaged();
        return pos;
      }
      const r = d.record;
      pos += d.len;
      if (r.type === RecordType.Seal) {
        // Sealed, yet the next segment never got its header: continue here, over the seal.
        return isLast ? pos - d.len : pos;
      }
      if (r.type === RecordType.Entry) seg.needs.set(r.group, Math.max(seg.needs.get(r.group) ?? 0, r.index));
      replay.apply(r, path, pos - d.len);
    }
  }

  // ------------------------------------------------------------------------------------------------

  stats(): WalStats {
    let pendingBytes = 0;
    for (const c of this.pending) pendingBytes += c.buf.length;
    return {
      ...this.counters,
      segments: this.segments.length,
      spareSegments: this.spares.length,
      pendingBytes,
    };
  }

  /** Writes and fdatasyncs anything pending, then closes the files. */
  async close(): Promise<void> {
    if (this.closed) return;
    try {
      if (!this.failure) {
        await this.sync();
        if (this.unsynced.size > 0) await this.datasyncAll([...this.unsynced]);
      }
    } finally {
      this.closed = true;
      if (this.intervalTimer) clearTimeout(this.intervalTimer);
      this.closeHandles();
    }
  }

  private closeHandles(): void {
    for (const s of this.segments) {
      s.handle?.close();
      s.handle = undefined;
    }
  }

  private group(group: number): GroupState {
    let g = this.groups.get(group);
    if (!g) {
      g = { released: 0, lastIndex: 0, lastTerm: 0, dropped: { term: 0, index: 0 } };
      this.groups.set(group, g);
    }
    return g;
  }

  private checkWritable(): void {
    if (this.closed) throw new StorageError("IO", `WAL in ${this.dir} is closed`);
    if (this.failure) throw this.failure;
  }

  /** A failed write or fdatasync stops the WAL for good: what the disk holds is then unknown. */
  private fail(err: unknown, what: string): StorageError {
    if (!this.failure) {
      this.failure = storageErrorFromOs(err, what, this.dir);
      this.log("error", "WAL stopped accepting writes", { code: this.failure.code, error: this.failure.message });
    }
    return this.failure;
  }
}

function assertGroup(group: number): void {
  assert(Number.isInteger(group) && group >= 0 && group <= 0xffffffff, `bad group id ${group}`);
}

/**
 * What a torn tail record held, if its unverified header makes sense for the group (anything else reads
 * as garbage and names nothing):
 * - an entry or snapshot with a real index, of a term the group had reached (a round writes its hard
 *   state before its entries): `tornTail`;
 * - a hard state of a term no older than the one kept (an older one tells nothing) and not absurdly far
 *   ahead of what the group had reached (a garbage header, not a term this process wrote):
 *   `tornHardStateTerm`.
 */
function tornRecordOf(
  r: { type: number; term: number; index: number },
  g: RecoveredGroup,
): Pick<RecoveredGroup, "tornTail" | "tornHardStateTerm"> {
  if (!Number.isSafeInteger(r.term) || r.term < 1) return {};
  const kept = g.hardState?.term ?? 0;
  const reached = Math.max(kept, g.entries.at(-1)?.term ?? 0);
  if (r.type === RecordType.Entry || r.type === RecordType.Snapshot) {
    return r.term <= reached && r.index >= 1 && Number.isSafeInteger(r.index) ? { tornTail: { term: r.term, index: r.index } } : {};
  }
  if (r.type === RecordType.HardState) {
    const ahead = Math.max(reached, g.snapshot?.term ?? 0) + TORN_TERM_AHEAD_MAX;
    return r.term >= kept && r.term <= ahead ? { tornHardStateTerm: r.term } : {};
  }
  return {};
}

/** Rebuilds each group's state from records in log order. */
class Replay {
  readonly groups = new Map<number, ReplayGroup>();

  apply(r: { type: RecordType; group: number; term: number; index: number; payload: Uint8Array }, file: string, position: number): void {
    if (r.type === RecordType.RemoveGroup) {
      this.groups.delete(r.group);
      return;
    }
    let g = this.groups.get(r.group);
    if (!g) {
      g = new ReplayGroup();
      this.groups.set(r.group, g);
    }
    switch (r.type) {
      case RecordType.Entry:
        g.append(decodeEntry(r), file, position);
        break;
      case RecordType.HardState:
        g.hardState = decodeHardState(r);
        break;
      case RecordType.Truncate:
        g.truncateFrom(r.index);
        break;
      case RecordType.Snapshot:
        g.installSnapshot(decodeSnapshot(r));
        break;
      case RecordType.Release:
        g.released = Math.max(g.released, r.index);
        break;
      case RecordType.Drop:
        // Marks only: the release written with it moves the release point (a segment head re-states the
        // drop after a release point lowered by entries written again since).
        if (entryBefore(g.dropped, r)) g.dropped = { term: r.term, index: r.index };
        break;
      default:
        throw new Error(`unexpected WAL record type ${r.type}`);
    }
  }

  appendEntry(group: number, e: Entry): void {
    let g = this.groups.get(group);
    if (!g) {
      g = new ReplayGroup();
      this.groups.set(group, g);
    }
    g.append(e, "", 0);
  }

  markAllDamaged(): void {
    for (const g of this.groups.values()) g.damaged = true;
  }
}

class ReplayGroup {
  hardState?: HardState;
  snapshot?: SnapshotMeta;
  released = 0;
  dropped = { term: 0, index: 0 };
  damaged = false;
  private gapped = false;
  private entries: Entry[] = [];

  lastIndex(): number {
    const last = this.entries[this.entries.length - 1];
    return Math.max(last?.index ?? 0, this.snapshot?.index ?? 0);
  }

  lastTerm(): number {
    const last = this.entries[this.entries.length - 1];
    if (last && last.index >= (this.snapshot?.index ?? 0)) return last.term;
    return this.snapshot?.term ?? 0;
  }

  append(e: Entry, _file: string, _position: number): void {
    if (this.gapped) return;
    if (e.index <= this.released) this.released = e.index - 1; // written again after a drop (see appendEntries)
    const last = this.entries[this.entries.length - 1];
    if (last && e.index <= last.index) {
      // The same index and term is the same entry (Raft's log matching): written again by a carry, whose
      // copy may end torn. Only an entry of another term replaces the log from there.
      const first = this.entries[0]!;
      if (e.index >= first.index && this.entries[e.index - first.index]!.term === e.term) return;
      this.truncateFrom(e.index);
    }
    const prev = this.entries[this.entries.length - 1];
    if (prev && e.index !== prev.index + 1) {
      // Records between were lost (corruption before this point): keep the contiguous prefix only, as
      // a log that lost its tail, and flag the group so it does not vote or lead on this log.
      this.gapped = true;
      this.damaged = true;
      return;
    }
    this.entries.push(e);
  }

  /** The entries from `index` on, if the log holds them contiguously from there (else from its first). */
  entriesFrom(index: number): Entry[] {
    const first = this.entries[0];
    if (!first || this.gapped) return [];
    return index <= first.index ? this.entries.slice() : this.entries.slice(index - first.index);
  }

  truncateFrom(index: number): void {
    const first = this.entries[0];
    if (!first) return;
    if (index <= first.index) this.entries = [];
    else this.entries.length = Math.min(this.entries.length, index - first.index);
  }

  installSnapshot(m: SnapshotMeta): void {
    // Every segment's head re-states the group's snapshot. Replaying that copy must change nothing: the
    // entries kept so far already start right after it, and the agreement check below would wipe them
    // (the entry at the snapshot's own index is gone by then), leaving a log with a hole after the snapshot.
    const same = this.snapshot !== undefined && this.snapshot.index === m.index && this.snapshot.term === m.term;
    this.snapshot = m;
    if (same) return;
    // Keep the suffix only if the log agrees with the snapshot at its index (compaction); otherwise the
    // snapshot replaces the whole log (installed from a leader), as Raft requires. When every entry kept
    // lies after the snapshot, its own entry went with an older segment, and a segment is dropped only
    // once all of it was released, i.e. applied, i.e. committed: it agrees with any snapshot there, so
    // the entries after it stay (a checkpoint's snapshot written after entries beyond it, as under load).
    const first = this.entries[0];
    if (first && m.index < first.index) return;
    const at = first ? this.entries[m.index - first.index] : undefined;
    this.entries = at && at.term === m.term ? this.entries.slice(m.index - first!.index + 1) : [];
  }

  result(): RecoveredGroup {
    const base = this.snapshot?.index ?? 0;
    const from = Math.max(this.released, base);
    const k = this.entries.findIndex((e) => e.index > from);
    let entries = k < 0 ? [] : this.entries.slice(k);
    let damaged = this.damaged;
    if (this.snapshot && entries.length > 0 && entries[0]!.index !== base + 1) {
      // A guard: the Raft log must continue right after its snapshot, so keep the entries from there when
      // the WAL still has them; otherwise start at the snapshot and fence the group (its leader sends the
      // rest again) rather than hand Raft a log with a hole.
      const j = this.entries.findIndex((e) => e.index === base + 1);
      if (j >= 0) entries = this.entries.slice(j);
      else {
        entries = [];
        damaged = true;
      }
    }
    const out: RecoveredGroup = { released: this.released, entries };
    if (this.hardState) out.hardState = this.hardState;
    if (this.snapshot) out.snapshot = this.snapshot;
    if (damaged) out.damaged = true;
    if (this.dropped.index > base) out.dropped = this.dropped;
    return out;
  }
}
