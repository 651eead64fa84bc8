// The storage API the broker (and the sentinel) drive. Storage knows nothing of Raft's rules: it keeps
// what it is told, durably when asked, and says exactly what it found on disk.
import type { Entry, HardState, SnapshotMeta } from "../raft/types";

/** When the WAL makes appended records durable. Default "always": nothing is acknowledged before fdatasync. */
export type FsyncPolicy = "always" | "never" | { intervalMs: number };

export type StorageErrorCode = "OFFSET_OUT_OF_RANGE" | "CORRUPT_DATA" | "DISK_FULL" | "READ_ONLY" | "IO";

export type LogLevel = "info" | "warn" | "error";
/** Where storage reports what it cut, rebuilt or refused (recovery, corruption, faults). */
export type StorageLogger = (level: LogLevel, message: string, details?: Record<string, unknown>) => void;

// ---------------------------------------------------------------------------------------------------
// File layer: every byte storage reads or writes goes through this, so tests can inject faults.

/** An open file. Reads and writes are positional; writes hit the page cache, datasync makes them durable. */
export interface FileHandle {
  readonly path: string;
  /** Writes all of `data` at `position` (throws the OS error, e.g. ENOSPC, possibly after a partial write). */
  write(data: Uint8Array, position: number): void;
  /** Reads up to buf.length bytes at `position`; returns how many were read (fewer only at end of file). */
  read(buf: Uint8Array, position: number): number;
  /**
   * Reads `length` bytes at `position` on the thread pool and drops them: they are then in the page cache,
   * so a read() of them right after costs a copy instead of holding the event loop for the device. Best
   * effort: it never rejects (the read that follows reports any error).
   */
  readAhead(position: number, length: number): Promise<void>;
  /** fdatasync on the thread pool, so the event loop keeps running meanwhile. */
  datasync(): Promise<void>;
  /** fdatasync inline: cheaper when nothing else is waiting. */
  datasyncSync(): void;
  truncate(lengthBytes: number): void;
  sizeBytes(): number;
  close(): void;
}

export type OpenMode =
  | "read" // existing file, read only
  | "write" // existing file, read and write
  | "create"; // read and write, created empty if missing (existing contents kept)

export interface FileLayer {
  open(path: string, mode: OpenMode): FileHandle;
  readFile(path: string): Uint8Array; // throws ENOENT if missing
  /** readFile on the thread pool: for reads of whole segments the event loop must not wait for. */
  readFileAsync(path: string): Promise<Uint8Array>;
  exists(path: string): boolean;
  rename(from: string, to: string): void;
  unlink(path: string): void;
  mkdir(path: string): void; // recursive, no error if it exists
  readdir(path: string): string[]; // names, not paths
  rmdir(path: string): void; // recursive
  /** fsync a directory so that creates, renames and unlinks in it survive a crash. */
  fsyncDir(path: string): void;
}

// ---------------------------------------------------------------------------------------------------
// WAL: one per broker, shared by every Raft group on it.

export interface WalOptions {
  dir: string;
  fsync: FsyncPolicy;
  /** Size of each preallocated (zero-filled) segment file; default 64 MiB. */
  segmentBytes?: number;
  /**
   * fdatasync on the event loop when a single caller waits (skips the thread-pool hop). Default true:
   * measured here at 1 in flight, 1,134/s inline vs 755/s on the thread pool (load ~15); only on a
   * badly oversubscribed machine (load 25 on 2 cores) did the thread pool win (526/s vs 198/s).
   */
  inlineFsyncWhenAlone?: boolean;
  /** Inline only when the round wrote at most this many bytes (a short fdatasync); default no limit. */
  inlineFsyncMaxBytes?: number;
  /**
   * Inline only when the previous round ended at least this long before this one began: rounds that
   * follow each other closely overlap better on the thread pool. Default 0.
   */
  inlineFsyncIdleMs?: number;
  /** Segment files kept for reuse once released; default 4. */
  spareSegmentsMax?: number;
  fs?: FileLayer;
  log?: StorageLogger;
}

export interface RecoveredGroup {
  hardState?: HardState;
  snapshot?: SnapshotMeta;
  /** Highest index released with release(); entries start after max(released, snapshot.index). */
  released: number;
  /** Contiguous, suffix truncations applied, torn tail cut. */
  entries: Entry[];
  /** Records of this group may have been lost to corruption (not a torn tail): do not vote on this log. */
  damaged?: boolean;
  /**
   * The newest entry let go with Wal.drop(), when no snapshot at or past it was stored since: the entries
   * after the snapshot up to this one are missing on purpose, and may have been acknowledged (Raft's
   * voteFloor, as for tornTail, with the earliest loss right after the snapshot).
   */
  dropped?: { term: number; index: number };
  /**
   * The WAL's torn tail was this group's entry or snapshot ending at (term, index), read from the torn
   * record's own header (so unverified, but checked to be plausible). A tear after a crash loses only
   * what was never made durable, but a tail lost any other way may have held an acknowledged entry.
   */
  tornTail?: { term: number; index: number };
  /**
   * The WAL's torn tail was this group's hard state for this term (read from the torn record's header, so
   * unverified but plausible): its vote may have left this process before the record was lost, so the
   * group must not vote again in that term. Never older than `hardState`'s term.
   */
  tornHardStateTerm?: number;
}

/** What recovery cut: a torn tail (expected after a crash) or corruption before the end (lost records). */
export interface WalCut {
  file: string;
  position: number;
  reason: string;
  /** True when valid records followed the damage: records that may have been acknowledged were lost. */
  midLog: boolean;
  /** The header of the record that failed to verify, when the bytes were there to read it (unverified). */
  record?: { type: number; group: number; term: number; index: number };
}

export interface WalStats {
  fsyncs: number;
  inlineFsyncs: number; // of fsyncs, those run on the event loop (one caller waiting, nothing to overlap)
  syncs: number; // sync() rounds that wrote something
  bytesWritten: number;
  recordsWritten: number;
  segments: number; // segment files holding needed records
  spareSegments: number; // released files waiting for reuse
  recycledSegments: number;
  createdSegments: number;
  pendingBytes: number; // appended, not yet written
}

// ---------------------------------------------------------------------------------------------------
// Partition log: `<data-dir>/<topic>/<partition>/`, segments of stamped record batches.

export interface PartitionLogOptions {
  dir: string;
  segmentBytes?: number; // roll the active segment beyond this; default 256 MiB, max 2 GiB
  segmentMs?: number; // roll the active segment when older; default 7 days
  retentionBytes?: number; // default unlimited (-1)
  retentionMs?: number; // default unlimited (-1)
  indexIntervalBytes?: number; // bytes between sparse offset index entries; default 4096
  writeBehindBytes?: number; // fdatasync the active segment in the background every this many bytes; default 2 MiB, 0 never
  fs?: FileLayer;
  log?: StorageLogger;
}

/** The options a topic's config sets, which may change while the log is open (PartitionLog.configure). */
export type PartitionLogSettings = Pick<PartitionLogOptions, "segmentBytes" | "segmentMs" | "retentionBytes" | "retentionMs">;

export interface ReadResult {
  /** Whole stored batches, byte-for-byte as appended (a view of the read buffer, never re-encoded). */
  records: Uint8Array;
  /** Offset after the last record returned (== the requested offset when records is empty). */
  nextOffset: number;
}

/** Raw batches for a replica (ReplicateFragment), verified end to end by crc32. */
export interface Fragment {
  data: Uint8Array;
  baseOffset: number; // baseOffset of the first batch in data
  nextOffset: number;
  crc32: number; // Bun.hash.crc32(data)
}

/** A range found corrupt on disk; it is never served until repaired or truncated away. */
export interface DamagedRange {
  file: string;
  position: number;
  fromOffset: number; // first offset that cannot be served
  toOffset: number; // exclusive: the next offset known good (the segment's end at worst)
}
