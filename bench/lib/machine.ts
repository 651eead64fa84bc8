// The machine's own limits for this work, measured in the same run as the systems so they share its noise:
// how many fdatasyncs per second the disk under the data dirs takes, how many MB/s one loopback TCP
// connection between two Bun processes carries, and how much a partition segment's copy of the bytes
// slows three brokers' WAL fdatasyncs on the shared disk.
import { closeSync, existsSync, fdatasyncSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { round } from "./emit";
import { runToEnd } from "./proc";

const fileBytes = 64 * 1024 * 1024;

/** Opens (truncating) a file of `bytes` zeros written with 1 MiB writes and synced: the WAL's kind of file. */
export function zeroFilledFile(path: string, bytes: number): number {
  const fd = openSync(path, "w+");
  const chunk = new Uint8Array(1024 * 1024);
  for (let off = 0; off < bytes; off += chunk.length) writeSync(fd, chunk, 0, Math.min(chunk.length, bytes - off), off);
  fdatasyncSync(fd);
  return fd;
}

/**
 * Overwrites a zero-filled, already synced file in place (the WAL's best case: no metadata to update)
 * and fdatasyncs after every write, for durationMs.
 */
export function fdatasyncRate(writeBytes: number, durationMs: number): Record<string, unknown> {
  const dir = mkdtempSync(join(tmpdir(), "goulette-bench-fsync-"));
  const path = join(dir, "zero-filled");
  const fd = zeroFilledFile(path, fileBytes);
  try {
    const data = new Uint8Array(writeBytes).fill(7);
    let syncs = 0;
    let pos = 0;
    const t0 = performance.now();
    let elapsed = 0;
    while (elapsed < durationMs) {
      writeSync(fd, data, 0, data.length, pos);
      fdatasyncSync(fd);
      syncs++;
      pos = (pos + writeBytes) % (fileBytes - writeBytes);
      elapsed = performance.now() - t0;
    }
    return {
      suite: "machine",
      limit: "fdatasync",
      write_bytes: writeBytes,
      fdatasync_per_s: Math.round(syncs / (elapsed / 1000)),
      mb_per_s: round((syncs * writeBytes) / 1e6 / (elapsed / 1000), 1),
      mean_us: round((elapsed * 1000) / syncs, 1),
      dir: tmpdir(),
    };
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Bytes /proc/self/io write_bytes charges for a small write plus fdatasync into a file that was zero-filled
 * with 1 MiB writes (as the WAL is), beyond the bytes written. Where the page cache holds such a file in
 * large folios, re-dirtying a synced folio charges (and writes back) the whole folio: seen here as ~1 MiB
 * per sync for 4 KiB of data. Measured so write amplification can be read with and without it.
 */
export function writeBytesPerFdatasync(dir: string, syncs = 50): number {
  const folder = mkdtempSync(join(dir, "goulette-bench-wb-"));
  const fd = zeroFilledFile(join(folder, "probe"), 16 * 1024 * 1024);
  const self = () => Number(/^write_bytes:\s+(\d+)$/m.exec(readFileSync("/proc/self/io", "utf8"))?.[1] ?? NaN);
  try {
    const block = new Uint8Array(4096).fill(1);
    const before = self();
    for (let i = 0; i < syncs; i++) {
      writeSync(fd, block, 0, block.length, i * block.length);
      fdatasyncSync(fd);
    }
    const charged = self() - before;
    if (!Number.isFinite(charged)) throw new Error("no write_bytes in /proc/self/io");
    return Math.max(0, Math.round(charged / syncs - block.length));
  } finally {
    closeSync(fd);
    rmSync(folder, { recursive: true, force: true });
  }
}

/** One connection, 64 KiB writes as fast as the socket drains, the receiver in another Bun process. */
export async function loopbackTcp(durationMs: number): Promise<Record<string, unknown>> {
  const r = await runToEnd("tcp", [process.execPath, join(import.meta.dir, "tcp-pair.ts"), String(durationMs)], durationMs + 30_000);
  const line = r.stdout.trim().split("\n").pop() ?? "";
  if (r.code !== 0 || !line.startsWith("{")) throw new Error(`tcp-pair failed (code ${r.code}): ${r.stderrTail}`);
  return { suite: "machine", limit: "loopback_tcp", ...(JSON.parse(line) as Record<string, unknown>) };
}

export const SEGMENT_MODES = ["none", "growing", "zeroed", "fallocated", "wal-fallocated"] as const;

/**
 * Three processes on the disk at once, each as a broker's WAL (overwrite a zero-filled file, fdatasync
 * per round) with a partition segment written beside it in each of SEGMENT_MODES (bench/lib/disk-writers.ts
 * says what each is). How much the segment copy slows the WAL's fdatasync, and whether how the segment file
 * was made matters: the question behind "write the payload once" (DESIGN.md, Storage).
 */
export async function walBesideSegments(durationMs: number, writeBytes: number): Promise<Record<string, unknown>[]> {
  const lines: Record<string, unknown>[] = [];
  for (const segment of SEGMENT_MODES) {
    const root = mkdtempSync(join(tmpdir(), "goulette-bench-disk-"));
    try {
      const go = join(root, "go");
      const dirs = [0, 1, 2].map((i) => join(root, `w${i}`));
      for (const d of dirs) mkdirSync(d);
      const runs = dirs.map((d, i) =>
        runToEnd(`disk-writer-${i}`, [process.execPath, join(import.meta.dir, "disk-writers.ts"), segment, d, String(durationMs), String(writeBytes)], durationMs + 180_000, {
          env: { ...process.env, DISK_WRITERS_GO: go },
        }),
      );
      // Until all three are ready; one that ended already (it failed) ends the wait too.
      let ended = 0;
      for (const r of runs) void r.then(() => ended++);
      const until = Date.now() + 150_000;
      while (ended === 0 && !dirs.every((d) => existsSync(join(d, "ready"))) && Date.now() < until) await Bun.sleep(10);
      writeFileSync(go, "");
      const results = await Promise.all(runs);
      const each = results.map((r) => {
        const line = r.stdout.trim().split("\n").pop() ?? "";
        if (r.code !== 0 || !line.startsWith("{")) throw new Error(`disk-writers ${segment} failed (code ${r.code}): ${r.stderrTail}`);
        return JSON.parse(line) as { rounds: number; wal_fdatasync_ms_median: number; wal_fdatasync_ms_mean: number; round_ms_mean: number };
      });
      const mean = (k: "wal_fdatasync_ms_median" | "wal_fdatasync_ms_mean" | "round_ms_mean") => round(each.reduce((a, e) => a + e[k], 0) / each.length, 3);
      lines.push({
        suite: "machine",
        limit: "wal_beside_segment",
        writers: 3,
        segment,
        write_bytes: writeBytes,
        wal_fdatasync_ms_median: mean("wal_fdatasync_ms_median"),
        wal_fdatasync_ms_mean: mean("wal_fdatasync_ms_mean"),
        round_ms_mean: mean("round_ms_mean"),
        rounds_per_writer: each.map((e) => e.rounds),
      });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }
  return lines;
}
