// Per-process counters from /proc: disk bytes written, CPU time, resident memory; and fdatasync counts
// from strace, since /proc has no fsync counter (syscw counts write calls, not syncs).
import { existsSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runToEnd } from "./proc";

/** Bytes this process caused to be written to storage (counted when pages are dirtied, not at writeback). */
export function writeBytes(pid: number): number {
  const io = readFileSync(`/proc/${pid}/io`, "utf8");
  const m = /^write_bytes:\s+(\d+)$/m.exec(io);
  if (!m) throw new Error(`/proc/${pid}/io has no write_bytes`);
  return Number(m[1]);
}

/**
 * A reader of the bytes the block device under `path` has been asked to write, from /proc/diskstats (what
 * reaches the disk, every writer on it included, unlike write_bytes), or undefined where it cannot tell.
 */
export function deviceWriteBytes(path: string): (() => number) | undefined {
  return diskstatsField(path, 9, 512); // sectors written
}

/** Like deviceWriteBytes, for the flush requests (cache flushes: fdatasync's cost) the device completed. */
export function deviceFlushes(path: string): (() => number) | undefined {
  return diskstatsField(path, 18, 1);
}

function diskstatsField(path: string, field: number, scale: number): (() => number) | undefined {
  const dev = statSync(path).dev;
  const major = (dev >> 8) & 0xfff;
  const minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
  const read = (): number | undefined => {
    for (const line of readFileSync("/proc/diskstats", "utf8").split("\n")) {
      const f = line.trim().split(/\s+/);
      if (Number(f[0]) === major && Number(f[1]) === minor && f[field] !== undefined) return Number(f[field]) * scale;
    }
    return undefined;
  };
  if (read() === undefined) return undefined;
  return () => read() ?? Number.NaN;
}

const clockTicksPerS = (() => {
  const r = Bun.spawnSync(["getconf", "CLK_TCK"]);
  const n = Number(r.stdout.toString().trim());
  return Number.isFinite(n) && n > 0 ? n : 100;
})();

/** User and system CPU seconds of every thread of the process so far. */
export function cpuSplit(pid: number): { user: number; system: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name (field 2) may hold spaces and parentheses: fields are counted after its last ')'.
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error(`cannot parse /proc/${pid}/stat`);
  return { user: utime / clockTicksPerS, system: stime / clockTicksPerS };
}

/** User + system CPU seconds of every thread of the process so far. */
export function cpuSeconds(pid: number): number {
  const { user, system } = cpuSplit(pid);
  return user + system;
}

export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!m) throw new Error(`/proc/${pid}/status has no VmRSS`);
  return Number(m[1]) * 1024;
}

/** CPU use as a fraction of one core over windowMs, per pid, sampled at both ends. */
export async function cpuShare(pids: number[], windowMs: number): Promise<number[]> {
  const before = pids.map(cpuSeconds);
  const t0 = performance.now();
  await Bun.sleep(windowMs);
  const seconds = (performance.now() - t0) / 1000;
  return pids.map((pid, i) => (cpuSeconds(pid) - before[i]!) / seconds);
}

export function straceAvailable(): boolean {
  return ["/usr/bin/strace", "/bin/strace", "/usr/local/bin/strace"].some((p) => existsSync(p));
}

export interface SyncCounts {
  pid: number;
  fdatasync: number;
  fsync: number;
  seconds: number;
  /** Wall-clock microseconds per fdatasync (strace -w): how long the caller waited for the disk. */
  fdatasyncUsPerCall: number | null;
}

/**
 * Counts fdatasync and fsync calls of each process (all its threads: the thread pool syncs too) for
 * windowMs with `strace -c -f -p`. Tracing slows the traced syscalls, so take throughput from another run.
 */
export async function countSyncs(pids: number[], windowMs: number): Promise<SyncCounts[]> {
  return Promise.all(
    pids.map(async (pid) => {
      const out = join(tmpdir(), `goulette-bench-strace-${pid}-${Date.now()}.txt`);
      try {
        const t0 = performance.now();
        const r = await runToEnd(
          `strace ${pid}`,
          ["timeout", "-s", "INT", `${windowMs / 1000}`, "strace", "-c", "-w", "-f", "-o", out, "-e", "trace=fdatasync,fsync", "-p", String(pid)],
          windowMs + 15_000,
          { quietStderr: true },
        );
        const seconds = (performance.now() - t0) / 1000;
        if (!existsSync(out)) throw new Error(`strace wrote nothing (code ${r.code}): ${r.stderrTail}`);
        const text = readFileSync(out, "utf8");
        const fdatasync = syscallRow(text, "fdatasync");
        return {
          pid,
          fdatasync: fdatasync?.calls ?? 0,
          fsync: syscallRow(text, "fsync")?.calls ?? 0,
          seconds,
          fdatasyncUsPerCall: fdatasync?.usPerCall ?? null,
        };
      } finally {
        rmSync(out, { force: true });
      }
    }),
  );
}

/** One syscall's row of a `strace -c` table: calls and microseconds per call (undefined: never called). */
function syscallRow(table: string, name: string): { calls: number; usPerCall: number } | undefined {
  for (const line of table.split("\n")) {
    const cols = line.trim().split(/\s+/);
    if (cols[cols.length - 1] !== name) continue;
    // % time, seconds, usecs/call, calls, [errors], syscall
    const usPerCall = Number(cols[2]);
    const calls = Number(cols[3]);
    if (!Number.isFinite(calls) || !Number.isFinite(usPerCall)) throw new Error(`cannot read strace row: ${line}`);
    return { calls, usPerCall };
  }
  return undefined;
}
