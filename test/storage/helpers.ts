import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EntryType, type Entry } from "../../src/raft/types";

export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "goulette-storage-"));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
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
