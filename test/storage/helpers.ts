import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EntryType, type Entry } from "../../src/raft/types";

const made: string[] = [];

/** A fresh directory under the OS temp dir; removeTempDirs() (in an afterEach) removes every one made. */
export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "goulette-storage-"));
  made.push(dir);
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Removes every directory tempDir() made so far: a test that makes several leaves none behind. */
export function removeTempDirs(): void {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
}

export function entry(index: number, term = 1, size = 16): Entry {
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = (index * 31 + i) & 0xff;
  return { index, term, type: EntryType.Normal, data };
}

export function entries(from: number, to: number, term = 1, size = 16): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push(entry(i, term, size));
  return out;
}

/** Index/term pairs, for comparing logs without their payload bytes. */
export function shape(es: Entry[]): string {
  return es.map((e) => `${e.index}@${e.term}`).join(",");
}

/** The newest segment of a WAL directory, and where its newest record starts and ends (records begin at 32). */
export function newestWalRecord(walDir: string): { path: string; bytes: Uint8Array; start: number; end: number; type: number } {
  const path = join(walDir, readdirSync(walDir).filter((f) => /^\d{16}\.wal$/.test(f)).sort().at(-1)!);
  const bytes = new Uint8Array(readFileSync(path));
  const view = new DataView(bytes.buffer);
  let end = 32;
  let start = -1;
  for (let len = view.getUint32(end, true); len > 0 && end + len <= bytes.length; len = view.getUint32(end, true)) {
    start = end;
    end += len;
  }
  if (start < 0) throw new Error(`no record in ${path}`);
  return { path, bytes, start, end, type: bytes[start + 28]! };
}

/** Zeroes the last `n` bytes of the newest WAL record (a tail lost after it was written); returns that record. */
export function tearNewestWalRecord(walDir: string, n: number): ReturnType<typeof newestWalRecord> {
  const r = newestWalRecord(walDir);
  const torn = r.bytes.slice();
  torn.fill(0, r.end - n, r.end);
  writeFileSync(r.path, torn);
  return r;
}
