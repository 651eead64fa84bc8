import { dirname } from "node:path";
import { storageErrorFromOs } from "./errors";
import type { FileLayer } from "./types";

/**
 * Replaces `path` with `bytes` so that a crash leaves either the old or the new contents, never a mix:
 * write a temp file, make it durable, rename over, then make the rename durable.
 */
export function writeFileAtomic(fs: FileLayer, path: string, bytes: Uint8Array): void {
  const tmp = `${path}.tmp`;
  try {
    if (fs.exists(tmp)) fs.unlink(tmp);
    writeFileDurable(fs, tmp, bytes);
    fs.rename(tmp, path);
    fs.fsyncDir(dirname(path));
  } catch (err) {
    throw storageErrorFromOs(err, "atomically writing", path);
  }
}

/** Writes `path` to hold exactly `bytes` and fdatasyncs it (not atomic: a crash may leave a mix). */
export function writeFileDurable(fs: FileLayer, path: string, bytes: Uint8Array): void {
  const h = fs.open(path, "create");
  try {
    h.write(bytes, 0);
    h.truncate(bytes.length);
    h.datasyncSync();
  } finally {
    h.close();
  }
}

/**
 * writeFileDurable with its fdatasync on the thread pool, for work that runs beside requests (sealing a
 * segment): done inline, the two index files of every sealed segment held the event loop, and every
 * partition the broker serves, for 1-4 ms per seal while the disk was busy with WAL syncs.
 */
export async function writeFileDurableAsync(fs: FileLayer, path: string, bytes: Uint8Array): Promise<void> {
  const h = fs.open(path, "create");
  try {
    h.write(bytes, 0);
    h.truncate(bytes.length);
    await h.datasync();
  } finally {
    h.close();
  }
}
