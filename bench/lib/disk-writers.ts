// One of three "brokers" sharing the disk, without the broker: the WAL's pattern alone, with a partition
// segment written beside it, for durationMs. Each round overwrites the next writeBytes of a zero-filled,
// synced WAL file and awaits its fdatasync on the thread pool (as the broker does); with a segment, the same
// bytes then go to the segment file too, with a background fdatasync nobody waits for every 2 MiB (the
// partition log's write-behind). The segment file is, by `segment`:
//   none      not written (the data path if the WAL were the only copy)
//   growing   appended to a new file (what partition segments are today)
//   zeroed    overwritten in a file zero-filled and synced first (a preallocated or recycled segment)
//   fallocated overwritten in a file reserved with fallocate (unwritten extents: converted on writeback)
//   wal-fallocated  no segment, and the WAL itself in a fallocated file: writing the payload once into
//             files that were not zero-filled or recycled first
// Prints one JSON line: rounds, the WAL fdatasync's median and mean wait, the mean round.
//   [DISK_WRITERS_GO=path] bun bench/lib/disk-writers.ts SEGMENT DIR DURATION_MS WRITE_BYTES
// machine.ts runs three at once (walBesideSegments).
import { closeSync, existsSync, fdatasync, fdatasyncSync, openSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { zeroFilledFile } from "./machine";

const SEGMENTS = ["none", "growing", "zeroed", "fallocated", "wal-fallocated"] as const;
type SegmentMode = (typeof SEGMENTS)[number];
const WRITE_BEHIND_BYTES = 2 * 1024 * 1024; // as the partition log (DEFAULT_WRITE_BEHIND_BYTES)

const [segmentArg, dir, durationArg, bytesArg] = process.argv.slice(2);
const segment = segmentArg as SegmentMode;
if (!SEGMENTS.includes(segment) || !dir) throw new Error(`usage: disk-writers.ts ${SEGMENTS.join("|")} DIR DURATION_MS WRITE_BYTES`);
const durationMs = Number(durationArg);
const writeBytes = Number(bytesArg);
if (!(durationMs > 0) || !Number.isInteger(writeBytes) || writeBytes < 1) throw new Error("DURATION_MS and WRITE_BYTES must be positive");

// Large enough that no round wraps within the measured time at this disk's speed (it wraps if it must).
const fileBytes = 256 * 1024 * 1024;

function fallocated(path: string): number {
  const fd = openSync(path, "w+");
  const r = Bun.spawnSync(["fallocate", "-l", String(fileBytes), path]);
  if (r.exitCode !== 0) throw new Error(`fallocate failed: ${r.stderr.toString().trim()}`);
  fdatasyncSync(fd);
  return fd;
}

const datasync = (fd: number) => new Promise<void>((resolve, reject) => fdatasync(fd, (e) => (e ? reject(e) : resolve())));

const wal = segment === "wal-fallocated" ? fallocated(join(dir, "wal")) : zeroFilledFile(join(dir, "wal"), fileBytes);
const seg =
  segment === "none" || segment === "wal-fallocated" ? -1
  : segment === "growing" ? openSync(join(dir, "segment"), "w+")
  : segment === "zeroed" ? zeroFilledFile(join(dir, "segment"), fileBytes)
  : fallocated(join(dir, "segment"));
const data = new Uint8Array(writeBytes).fill(7);
// The writers prepare their files at different speeds: each says it is ready (a file in DIR), then all
// start when the parent creates DISK_WRITERS_GO.
const go = process.env.DISK_WRITERS_GO;
if (go) {
  writeFileSync(join(dir, "ready"), "");
  const until = Date.now() + 120_000;
  while (!existsSync(go)) {
    if (Date.now() > until) throw new Error(`no ${go} within 120 s`);
    await Bun.sleep(2);
  }
}

const waits: number[] = [];
let pos = 0;
let unsynced = 0;
let writeBehind: Promise<void> = Promise.resolve();
const t0 = performance.now();
while (performance.now() - t0 < durationMs) {
  if (pos + writeBytes > fileBytes) pos = 0;
  writeSync(wal, data, 0, writeBytes, pos);
  const s = performance.now();
  await datasync(wal);
  waits.push(performance.now() - s);
  if (seg >= 0) {
    writeSync(seg, data, 0, writeBytes, pos);
    unsynced += writeBytes;
    if (unsynced >= WRITE_BEHIND_BYTES) {
      unsynced = 0;
      writeBehind = writeBehind.then(() => datasync(seg));
    }
  }
  pos += writeBytes;
}
const elapsed = performance.now() - t0;
await writeBehind;
closeSync(wal);
if (seg >= 0) closeSync(seg);
waits.sort((a, b) => a - b);
const r3 = (x: number) => Math.round(x * 1000) / 1000;
console.log(JSON.stringify({
  rounds: waits.length,
  wal_fdatasync_ms_median: r3(waits[Math.floor(waits.length / 2)] ?? NaN),
  wal_fdatasync_ms_mean: r3(waits.reduce((a, b) => a + b, 0) / waits.length),
  round_ms_mean: r3(elapsed / waits.length),
}));
