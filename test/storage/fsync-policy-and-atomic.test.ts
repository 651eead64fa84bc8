import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "../../src/storage/atomic-file";
import { StorageError } from "../../src/storage/errors";
import { FaultyFileLayer, realFileLayer } from "../../src/storage/file-layer";
import { formatFsyncPolicy, parseFsyncPolicy } from "../../src/storage/fsync-policy";
import { tempDir } from "./helpers";

describe("fsync policy", () => {
  test("parses the three forms and formats them back", () => {
    for (const s of ["always", "never", "interval:5", "interval:60000"]) expect(formatFsyncPolicy(parseFsyncPolicy(s))).toBe(s);
    expect(parseFsyncPolicy("interval:10")).toEqual({ intervalMs: 10 });
  });

  test("anything else is a clear error", () => {
    for (const s of ["", "sometimes", "interval:", "interval:0", "interval:-1", "interval:1.5", "interval:60001", "ALWAYS"]) {
      expect(() => parseFsyncPolicy(s)).toThrow(/invalid fsync policy .*"always", "never" or "interval:<ms>"/);
    }
  });
});

describe("writeFileAtomic", () => {
  test("replaces the contents whole and leaves no temp file", () => {
    const t = tempDir();
    try {
      const p = join(t.dir, "meta");
      writeFileAtomic(realFileLayer, p, new Uint8Array([1, 2, 3, 4, 5]));
      writeFileAtomic(realFileLayer, p, new Uint8Array([9, 9]));
      expect([...readFileSync(p)]).toEqual([9, 9]);
      expect(existsSync(`${p}.tmp`)).toBe(false);
    } finally {
      t.cleanup();
    }
  });

  test("a full disk fails with DISK_FULL and the old contents stay", () => {
    const t = tempDir();
    try {
      const p = join(t.dir, "meta");
      writeFileAtomic(realFileLayer, p, new Uint8Array([1, 2, 3]));
      const fs = new FaultyFileLayer();
      fs.writeBudgetBytes = 2;
      let e: unknown;
      try {
        writeFileAtomic(fs, p, new Uint8Array([7, 7, 7, 7]));
      } catch (x) {
        e = x;
      }
      expect(e).toBeInstanceOf(StorageError);
      expect((e as StorageError).code).toBe("DISK_FULL");
      expect([...readFileSync(p)]).toEqual([1, 2, 3]);
    } finally {
      t.cleanup();
    }
  });
});
