// Storage benchmark: JSON lines. Run: ./node_modules/.bin/bun bench/storage.ts [--quick]
//   wal_append      1 KiB entries from 1 / 64 / 1,000 groups, 256 producers in flight, per fsync policy
//   data_path       WAL + partition segments together: bytes written per payload byte, fsyncs/s
//   wal_recovery    seconds to reopen a WAL of a few hundred MB, scaled to 1 GB
//   partition_read  MB/s reading by offset (sequential 1 MiB fetches, random single batches)
//   raw_ceiling     a plain loop: same bytes, one zero-filled file, one fdatasync per 64 KiB
import * as nodeFs from "node:fs";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EntryType, type Entry } from "../src/raft/types";
import { PartitionLog } from "../src/storage/partition-log";
import { Wal } from "../src/storage/wal";
import type { FsyncPolicy } from "../src/storage/types";
import { formatFsyncPolicy } from "../src/storage/fsync-policy";

const quick = process.argv.includes("--quick");
const RUN_MS = quick ? 400 : 1500;
const IN_FLIGHT = 256;
const PAYLOAD_BYTES = 1024;
const root = mkdtempSync(join(tmpdir(), "goulette-bench-storage-"));
const emit = (o: Record<string, unknown>) => console.log(JSON.stringify(o));
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

/** A stamped one-record batch holding a 1 KiB value, in the stored format (header 60 + record 18 + value). */
function makeBatch(baseOffset: number, raftIndex: number): Uint8Array {
  const recBytes = 4 + 4 + 4 + 4 + PAYLOAD_BYTES + 2;
  const b = new Uint8Array(60 + recBytes);
  const v = new DataView(b.buffer);
  v.setBigInt64(0, BigInt(baseOffset));
  v.setBigInt64(8, BigInt(raftIndex));
  v.setUint32(16, b.length - 20);
  v.setUint8(24, 1);
  v.setUint32(26, 1);
  v.setBigInt64(30, BigInt(Date.now()));
  v.setBigInt64(38, BigInt(Date.now()));
  v.setUint32(60, recBytes - 4);
  v.setInt32(68, -1);
  v.setInt32(72, PAYLOAD_BYTES);
  for (let i = 76; i < 76 + PAYLOAD_BYTES; i++) b[i] = i & 0xff;
  v.setUint32(20, Bun.hash.crc32(b.subarray(24)));
  return b;
}

async function walAppend(groups: number, policy: FsyncPolicy, inFlight = IN_FLIGHT, inline?: boolean): Promise<void> {
  const dir = join(root, `wal-${groups}-${formatFsyncPolicy(policy)}`);
  const wal = await Wal.open({ dir, fsync: policy, inlineFsyncWhenAlone: inline });
  const next = new Array<number>(groups).fill(1);
  const data = makeBatch(0, 0);
  let appends = 0;
  const startStats = wal.stats();
  const t0 = performance.now();
  const producer = async (id: number) => {
    let g = id % groups;
    // Checks the clock rather than a timer: under "never" sync() resolves without yielding to timers.
    while (performance.now() - t0 < RUN_MS) {
      const e: Entry = { term: 1, index: next[g]!++, type: EntryType.Normal, data };
      wal.appendEntries(g, [e]);
      await wal.sync();
      appends++;
      // What a broker does once partitions are flushed: let the WAL reuse its segments.
      if (e.index % 4096 === 0) wal.release(g, e.index - 1024);
      g = (g + inFlight) % groups;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, (_, i) => producer(i)));
  const s = (performance.now() - t0) / 1000;
  const st = wal.stats();
  emit({
    bench: "wal_append",
    groups,
    fsync: formatFsyncPolicy(policy),
    inFlight,
    inlineFdatasyncs: st.inlineFsyncs,
    appendsPerSec: Math.round(appends / s),
    fdatasyncsPerSec: Math.round((st.fsyncs - startStats.fsyncs) / s),
    appendsPerSync: round(appends / Math.max(1, st.syncs)),
    walMBPerSec: round(st.bytesWritten / s / 1e6),
    segmentsCreated: st.createdSegments,
    segmentsReused: st.recycledSegments,
  });
  await wal.close();
  rmSync(dir, { recursive: true, force: true });
}

/** The whole path of a replica: WAL (fsync always), then committed batches into partition segments. */
async function dataPath(groups: number): Promise<void> {
  const dir = join(root, `path-${groups}`);
  const wal = await Wal.open({ dir: join(dir, "wal"), fsync: "always", segmentBytes: 16 << 20 });
  const parts: PartitionLog[] = [];
  for (let g = 0; g < groups; g++) parts.push(await PartitionLog.open({ dir: join(dir, "t", String(g)), segmentBytes: 64 << 20 }));
  const next = new Array<number>(groups).fill(1);
  let appends = 0;
  let flushing = false;
  const t0 = performance.now();
  const producer = async (id: number) => {
    let g = id % groups;
    while (performance.now() - t0 < 2 * RUN_MS) {
      const index = next[g]!++;
      const batch = makeBatch(index - 1, index);
      wal.appendEntries(g, [{ term: 1, index, type: EntryType.Normal, data: batch }]);
      await wal.sync();
      parts[g]!.append(batch); // committed: applied to the partition's segment, no fsync of its own
      appends++;
      g = (g + IN_FLIGHT) % groups;
    }
  };
  // What keeps the WAL short: when it spans more than two segments, flush only the partitions that pin
  // its oldest segment, then release them (partition fdatasyncs stay rare).
  let partitionFlushes = 0;
  const flusher = setInterval(async () => {
    if (flushing || wal.stats().segments <= 2) return;
    flushing = true;
    for (const g of wal.pinningGroups()) {
      wal.release(g, await parts[g]!.flush());
      partitionFlushes++;
    }
    flushing = false;
  }, 100);
  await Promise.all(Array.from({ length: IN_FLIGHT }, (_, i) => producer(i)));
  clearInterval(flusher);
  while (flushing) await Bun.sleep(5);
  const s = (performance.now() - t0) / 1000;
  const segBytes = parts.reduce((n, p) => n + p.sizeBytes, 0);
  const st = wal.stats();
  emit({
    bench: "data_path",
    groups,
    fsync: "always",
    appendsPerSec: Math.round(appends / s),
    walFdatasyncsPerSec: Math.round(st.fsyncs / s),
    bytesWrittenPerPayloadByte: round((st.bytesWritten + segBytes) / (appends * PAYLOAD_BYTES), 3),
    walBytesPerPayloadByte: round(st.bytesWritten / (appends * PAYLOAD_BYTES), 3),
    segmentBytesPerPayloadByte: round(segBytes / (appends * PAYLOAD_BYTES), 3),
    walZeroFillBytes: st.createdSegments * (16 << 20),
    walSegmentsReused: st.recycledSegments,
    partitionFlushesPerSec: round(partitionFlushes / s),
  });
  await wal.close();
  for (const p of parts) await p.close();
  rmSync(dir, { recursive: true, force: true });
}

async function walRecovery(totalBytes: number): Promise<void> {
  const dir = join(root, "recovery");
  const wal = await Wal.open({ dir, fsync: "never" });
  const data = makeBatch(0, 0);
  const groups = 64;
  const next = new Array<number>(groups).fill(1);
  let written = 0;
  while (written < totalBytes) {
    for (let i = 0; i < 256; i++) {
      const g = i % groups;
      wal.appendEntries(g, [{ term: 1, index: next[g]!++, type: EntryType.Normal, data }]);
    }
    await wal.sync();
    written = wal.stats().bytesWritten;
  }
  await wal.close();
  const t0 = performance.now();
  const again = await Wal.open({ dir, fsync: "never" });
  const s = (performance.now() - t0) / 1000;
  let entries = 0;
  for (const r of again.recovered.values()) entries += r.entries.length;
  emit({
    bench: "wal_recovery",
    walMB: round(written / 1e6),
    entries,
    seconds: round(s, 3),
    secondsPerGB: round(s / (written / 1e9), 2),
    note: "files in page cache (just written)",
  });
  await again.close();
  rmSync(dir, { recursive: true, force: true });
}

async function partitionRead(totalBytes: number): Promise<void> {
  const dir = join(root, "read");
  const p = await PartitionLog.open({ dir, segmentBytes: 64 << 20 });
  let offset = 0;
  while (p.sizeBytes < totalBytes) p.append(makeBatch(offset, ++offset));
  await p.flush();
  // Three passes: the first includes JIT warm-up; the best is the steady state.
  const passes: number[] = [];
  let bytes = 0;
  let t0 = 0;
  let s = 0;
  for (let pass = 0; pass < 3; pass++) {
    t0 = performance.now();
    bytes = 0;
    for (let o = 0; o < p.nextOffset; ) {
      const r = p.read(o, 1 << 20);
      bytes += r.records.length;
      o = r.nextOffset;
    }
    passes.push(round(bytes / ((performance.now() - t0) / 1000) / 1e6));
  }
  emit({
    bench: "partition_read",
    mode: "sequential 1 MiB fetches, crc verified",
    MB: round(bytes / 1e6),
    MBPerSecFirstPass: passes[0],
    MBPerSecBest: Math.max(...passes),
  });
  const n = quick ? 5000 : 50_000;
  t0 = performance.now();
  bytes = 0;
  for (let i = 0; i < n; i++) bytes += p.read(Math.floor(Math.random() * p.nextOffset), 1).records.length;
  s = (performance.now() - t0) / 1000;
  emit({ bench: "partition_read", mode: "random single batch", readsPerSec: Math.round(n / s), MBPerSec: round(bytes / s / 1e6) });
  await p.close();
  rmSync(dir, { recursive: true, force: true });
}

/** The machine's ceiling for this work: one preallocated file, one fdatasync per 64 KiB of 1 KiB records. */
async function rawCeiling(): Promise<void> {
  const path = join(root, "raw");
  const fileBytes = 256 << 20;
  const fd = nodeFs.openSync(path, "w+");
  const zeros = new Uint8Array(1 << 20);
  for (let pos = 0; pos < fileBytes; pos += zeros.length) nodeFs.writeSync(fd, zeros, 0, zeros.length, pos);
  nodeFs.fdatasyncSync(fd);
  const chunk = new Uint8Array(64 * 1024);
  chunk.fill(7);
  const recordBytes = makeBatch(0, 0).length + 30; // what the WAL writes per 1 KiB entry
  const perChunk = Math.floor(chunk.length / recordBytes);
  let pos = 0;
  let records = 0;
  let fsyncs = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < RUN_MS) {
    nodeFs.writeSync(fd, chunk, 0, chunk.length, pos);
    await new Promise<void>((res, rej) => nodeFs.fdatasync(fd, (e) => (e ? rej(e) : res())));
    fsyncs++;
    records += perChunk;
    pos = (pos + chunk.length) % fileBytes;
  }
  const s = (performance.now() - t0) / 1000;
  nodeFs.closeSync(fd);
  emit({
    bench: "raw_ceiling",
    appendsPerSec: Math.round(records / s),
    fdatasyncsPerSec: Math.round(fsyncs / s),
    MBPerSec: round((fsyncs * chunk.length) / s / 1e6),
  });
  rmSync(path, { force: true });
}

try {
  await rawCeiling();
  await walAppend(1, "always", 1, false);
  await walAppend(1, "always", 1, true);
  for (const policy of ["always", { intervalMs: 5 }, "never"] as FsyncPolicy[]) {
    for (const groups of [1, 64, 1000]) await walAppend(groups, policy);
  }
  await dataPath(64);
  await dataPath(1000);
  await walRecovery(quick ? 64e6 : 300e6);
  Bun.gc(true); // the recovered WAL is garbage now: collect it before timing reads
  await partitionRead(quick ? 32e6 : 128e6);
} finally {
  rmSync(root, { recursive: true, force: true });
}
