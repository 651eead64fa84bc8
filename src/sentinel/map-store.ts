// Makes the cluster map durable. A command is acknowledged only once it is on disk, so a restarted
// sentinel resumes with every topic, group id and producer id it ever handed out.
//
// This is the single-sentinel store: an append-only command log (`map.log`) plus a snapshot written
// atomically (`map.snapshot`) that lets the log be cut. Commands are group-committed: everything proposed
// while a write is in flight goes out in the next write with one fdatasync.

import { mkdirSync, openSync, closeSync, ftruncateSync, readFileSync, existsSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { writeFileAtomic } from "../storage/atomic-file";
import { realFileLayer } from "../storage/file-layer";
import type { Logger } from "../log";
import { ClusterMap, decodeCommand, encodeCommand, type MapCommand, type MapResult, type MapSnapshot } from "./cluster-map";

export interface MapStore {
  readonly map: ClusterMap;
  /** Applies a command once it is durable (and, with several sentinels, committed by a majority). */
  propose(command: MapCommand): Promise<MapResult>;
  close(): Promise<void>;
}

export interface FileMapStoreOptions {
  dir: string;
  fsync: boolean; // false only for fsync policy "never"
  snapshotEveryRecords?: number; // cut the log after this many records, default 1000
  log?: Logger;
}

const RECORD_HEADER_BYTES = 8; // [length u32][crc32 u32] big-endian, then the command's JSON bytes
const MAX_RECORD_BYTES = 4 * 1024 * 1024; // a create-topic of 10,000 partitions x RF 16 stays well below
const MAX_PENDING_COMMANDS = 10_000; // proposals waiting for the next write; beyond it propose() refuses

interface Pending {
  bytes: Uint8Array;
  result: MapResult;
  resolve: (r: MapResult) => void;
  reject: (e: unknown) => void;
}

export class FileMapStore implements MapStore {
  readonly map = new ClusterMap();
  private file!: FileHandle;
  private fileBytes = 0;
  private records = 0;
  private pending: Pending[] = [];
  private writing: Promise<void> | undefined;
  private failed: unknown;
  private closed = false;

  private constructor(private readonly opts: FileMapStoreOptions) {}

  static async open(opts: FileMapStoreOptions): Promise<FileMapStore> {
    const store = new FileMapStore(opts);
    await store.recover();
    return store;
  }

  private get logPath(): string {
    return join(this.opts.dir, "map.log");
  }

  private get snapshotPath(): string {
    return join(this.opts.dir, "map.snapshot");
  }

  private async recover(): Promise<void> {
    mkdirSync(this.opts.dir, { recursive: true });
    if (existsSync(this.snapshotPath)) {
      const snap = JSON.parse(readFileSync(this.snapshotPath, "utf8")) as MapSnapshot;
      this.map.restore(snap);
    }
    if (!existsSync(this.logPath)) closeSync(openSync(this.logPath, "w"));
    const bytes = new Uint8Array(readFileSync(this.logPath));
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let at = 0;
    let replayed = 0;
    while (at + RECORD_HEADER_BYTES <= bytes.length) {
      const length = view.getUint32(at);
      const crc = view.getUint32(at + 4);
      if (length === 0 || length > MAX_RECORD_BYTES || at + RECORD_HEADER_BYTES + length > bytes.length) break;
      const payload = bytes.subarray(at + RECORD_HEADER_BYTES, at + RECORD_HEADER_BYTES + length);
      if ((Bun.hash.crc32(payload) >>> 0) !== crc) break;
      const result = this.map.apply(decodeCommand(payload));
      // Only accepted commands are logged, so replay must accept each one again: anything else means the
      // log and the snapshot disagree, and guessing would corrupt the map.
      if (!result.ok) throw new Error(`map log replay refused a logged command at byte ${at}: ${result.message}`);
      at += RECORD_HEADER_BYTES + length;
      replayed++;
    }
    if (at < bytes.length) {
      // A torn write at the tail (crash mid-append) is cut off; it was never acknowledged.
      this.opts.log?.warn("sentinel map log tail cut", { file: this.logPath, at, size: bytes.length });
      const fd = openSync(this.logPath, "r+");
      try {
        ftruncateSync(fd, at);
      } finally {
        closeSync(fd);
      }
    }
    this.fileBytes = at;
    this.records = replayed;
    this.file = await open(this.logPath, "a");
    this.opts.log?.info("sentinel map recovered", {
      epoch: this.map.version,
      topics: this.map.allTopics().length,
      brokers: this.map.allBrokers().length,
      replayed,
    });
  }

  propose(command: MapCommand): Promise<MapResult> {
    if (this.closed) return Promise.reject(new Error("map store is closed"));
    if (this.failed) return Promise.reject(this.failed);
    // Apply now so later proposals see this one's effect (order is the log's order); acknowledge only
    // after the write is durable. A refused command changes nothing, so it needs no write.
    const result = this.map.apply(command);
    if (!result.ok) return Promise.resolve(result);
    const bytes = encodeCommand(command);
    if (bytes.length > MAX_RECORD_BYTES) throw new Error(`map command of ${bytes.length} bytes is too large`);
    if (this.pending.length >= MAX_PENDING_COMMANDS) return Promise.reject(new Error("map store overloaded"));
    return new Promise<MapResult>((resolve, reject) => {
      this.pending.push({ bytes, result, resolve, reject });
      this.kick();
    });
  }

  private kick(): void {
    if (this.writing) return;
    this.writing = this.writeLoop().finally(() => {
      this.writing = undefined;
      // A proposal may have arrived between the loop's last check and here.
      if (this.pending.length > 0 && !this.failed) this.kick();
    });
  }

  private async writeLoop(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      const size = batch.reduce((n, p) => n + RECORD_HEADER_BYTES + p.bytes.length, 0);
      const out = new Uint8Array(size);
      const view = new DataView(out.buffer);
      let at = 0;
      for (const p of batch) {
        view.setUint32(at, p.bytes.length);
        view.setUint32(at + 4, Bun.hash.crc32(p.bytes) >>> 0);
        out.set(p.bytes, at + RECORD_HEADER_BYTES);
        at += RECORD_HEADER_BYTES + p.bytes.length;
      }
      try {
        await this.file.write(out);
        if (this.opts.fsync) await this.file.datasync();
      } catch (e) {
        // The in-memory map is ahead of the disk now: stop accepting writes rather than diverge further.
        this.failed = e;
        for (const p of [...batch, ...this.pending]) p.reject(e);
        this.pending = [];
        this.opts.log?.error("sentinel map write failed", { error: String(e) });
        return;
      }
      this.fileBytes += size;
      this.records += batch.length;
      for (const p of batch) p.resolve(p.result);
      if (this.records >= (this.opts.snapshotEveryRecords ?? 1000)) await this.compact();
    }
  }

  /** Snapshot the map (atomic replace), then empty the log it covers. */
  private async compact(): Promise<void> {
    const snap = this.map.snapshot();
    // Commands applied but still pending are in the snapshot AND will be appended after the cut: replay
    // would apply them twice. So only compact when nothing is pending.
    if (this.pending.length > 0) return;
    writeFileAtomic(realFileLayer, this.snapshotPath, new TextEncoder().encode(JSON.stringify(snap)));
    await this.file.truncate(0);
    if (this.opts.fsync) await this.file.datasync();
    this.fileBytes = 0;
    this.records = 0;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.writing) await this.writing;
    await this.file.close();
  }
}
