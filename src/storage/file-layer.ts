// The one door to the disk. Writes and reads are synchronous positional calls (they hit the page cache
// and cost microseconds); fdatasync, which waits for the device, also has a thread-pool variant, and so
// does a read of data that may not be cached (readAhead, for the background scrub).
import * as nodeFs from "node:fs";
import type { FileHandle, FileLayer, OpenMode } from "./types";

class RealFileHandle implements FileHandle {
  private closed = false;
  constructor(
    readonly path: string,
    private readonly fd: number,
  ) {}

  write(data: Uint8Array, position: number): void {
    let done = 0;
    while (done < data.length) {
      const n = nodeFs.writeSync(this.fd, data, done, data.length - done, position + done);
      if (n <= 0) throw new Error(`short write to ${this.path}`);
      done += n;
    }
  }

  read(buf: Uint8Array, position: number): number {
    let done = 0;
    while (done < buf.length) {
      const n = nodeFs.readSync(this.fd, buf, done, buf.length - done, position + done);
      if (n === 0) break;
      done += n;
    }
    return done;
  }

  readAhead(position: number, length: number): Promise<void> {
    if (this.closed || length <= 0) return Promise.resolve();
    return new Promise((resolve) => nodeFs.read(this.fd, Buffer.allocUnsafe(length), 0, length, position, () => resolve()));
  }

  datasync(): Promise<void> {
    return new Promise((resolve, reject) => nodeFs.fdatasync(this.fd, (err) => (err ? reject(err) : resolve())));
  }

  datasyncSync(): void {
    nodeFs.fdatasyncSync(this.fd);
  }

  truncate(lengthBytes: number): void {
    nodeFs.ftruncateSync(this.fd, lengthBytes);
  }

  sizeBytes(): number {
    return nodeFs.fstatSync(this.fd).size;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    nodeFs.closeSync(this.fd);
  }
}

const OPEN_FLAGS: Record<OpenMode, string> = { read: "r", write: "r+", create: "a+" };

export const realFileLayer: FileLayer = {
  open(path: string, mode: OpenMode): FileHandle {
    if (mode === "create" && !nodeFs.existsSync(path)) {
      // "a+" would force appends to the end; create first, then open for positional writes.
      nodeFs.closeSync(nodeFs.openSync(path, "wx"));
    }
    return new RealFileHandle(path, nodeFs.openSync(path, mode === "read" ? "r" : OPEN_FLAGS.write));
  },
  readFile(path: string): Uint8Array {
    const b = nodeFs.readFileSync(path);
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength); // a view: no copy of a 64 MiB segment
  },
  async readFileAsync(path: string): Promise<Uint8Array> {
    const b = await nodeFs.promises.readFile(path);
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  },
  exists: (path) => nodeFs.existsSync(path),
  rename: (from, to) => nodeFs.renameSync(from, to),
  unlink: (path) => nodeFs.unlinkSync(path),
  mkdir: (path) => void nodeFs.mkdirSync(path, { recursive: true }),
  readdir: (path) => nodeFs.readdirSync(path),
  rmdir: (path) => nodeFs.rmSync(path, { recursive: true, force: true }),
  fsyncDir(path: string): void {
    const fd = nodeFs.openSync(path, "r");
    try {
      nodeFs.fsyncSync(fd);
    } finally {
      nodeFs.closeSync(fd);
    }
  },
};

function osError(code: string, what: string, path: string): Error {
  const err = new Error(`${code}: injected fault on ${what} ${path}`) as Error & { code: string };
  err.code = code;
  return err;
}

/**
 * Wraps a file layer and fails on demand, as a full disk, a read-only mount or a vanished file would.
 * Faults apply to paths containing `pathContains` (all paths when empty).
 */
export class FaultyFileLayer implements FileLayer {
  /** Bytes that may still be written before writes fail with ENOSPC (partially, like a real full disk). */
  writeBudgetBytes = Infinity;
  /** When set, every mutating call fails with this code (EROFS, EACCES). */
  readOnlyCode: string | undefined;
  /** When set, datasync fails with this code (EIO). */
  datasyncFailCode: string | undefined;
  /** Paths that look missing (ENOENT) to open/readFile/exists. */
  readonly missing = new Set<string>();
  /** Paths still listed by readdir that fail to open with ENOENT (a file that vanished). */
  readonly missingOnOpen = new Set<string>();
  pathContains = "";
  bytesWritten = 0;
  datasyncs = 0;
  /** Every file fdatasync'd on the event loop (datasyncSync), in order: work that should not block it shows here. */
  readonly inlineDatasyncPaths: string[] = [];
  /** Every file read whole on the event loop (readFile), in order: a long read that should not block it shows here. */
  readonly readFilePaths: string[] = [];
  /** When true, every read and read-ahead is recorded in `reads`, in order. */
  recordReads = false;
  readonly reads: { path: string; position: number; length: number; ahead: boolean }[] = [];

  constructor(private readonly inner: FileLayer = realFileLayer) {}

  private applies(path: string): boolean {
    return path.includes(this.pathContains);
  }

  private checkMutation(what: string, path: string): void {
    if (this.readOnlyCode !== undefined && this.applies(path)) throw osError(this.readOnlyCode, what, path);
  }

  open(path: string, mode: OpenMode): FileHandle {
    if (this.missing.has(path) || this.missingOnOpen.has(path)) throw osError("ENOENT", "open", path);
    if (mode !== "read") this.checkMutation("open", path);
    const h = this.inner.open(path, mode);
    const layer = this;
    return {
      path,
      write(data: Uint8Array, position: number): void {
        layer.checkMutation("write", path);
        if (layer.applies(path) && data.length > layer.writeBudgetBytes) {
          const partial = Math.max(0, Math.floor(layer.writeBudgetBytes));
          if (partial > 0) h.write(data.subarray(0, partial), position);
          layer.bytesWritten += partial;
          layer.writeBudgetBytes = 0;
          throw osError("ENOSPC", "write", path);
        }
        h.write(data, position);
        layer.bytesWritten += data.length;
        if (layer.applies(path)) layer.writeBudgetBytes -= data.length;
      },
      read(buf: Uint8Array, position: number): number {
        if (layer.recordReads) layer.reads.push({ path, position, length: buf.length, ahead: false });
        return h.read(buf, position);
      },
      readAhead(position: number, length: number): Promise<void> {
        if (layer.recordReads) layer.reads.push({ path, position, length, ahead: true });
        return h.readAhead(position, length);
      },
      async datasync(): Promise<void> {
        if (layer.datasyncFailCode !== undefined && layer.applies(path)) {
          throw osError(layer.datasyncFailCode, "fdatasync", path);
        }
        layer.datasyncs++;
        await h.datasync();
      },
      datasyncSync(): void {
        if (layer.datasyncFailCode !== undefined && layer.applies(path)) {
          throw osError(layer.datasyncFailCode, "fdatasync", path);
        }
        layer.datasyncs++;
        layer.inlineDatasyncPaths.push(path);
        h.datasyncSync();
      },
      truncate(lengthBytes: number): void {
        layer.checkMutation("truncate", path);
        h.truncate(lengthBytes);
      },
      sizeBytes: () => h.sizeBytes(),
      close: () => h.close(),
    };
  }

  readFile(path: string): Uint8Array {
    if (this.missing.has(path)) throw osError("ENOENT", "read", path);
    this.readFilePaths.push(path);
    return this.inner.readFile(path);
  }
  async readFileAsync(path: string): Promise<Uint8Array> {
    if (this.missing.has(path)) throw osError("ENOENT", "read", path);
    return this.inner.readFileAsync(path);
  }
  exists(path: string): boolean {
    return !this.missing.has(path) && this.inner.exists(path);
  }
  rename(from: string, to: string): void {
    this.checkMutation("rename", from);
    this.inner.rename(from, to);
  }
  unlink(path: string): void {
    this.checkMutation("unlink", path);
    this.inner.unlink(path);
  }
  mkdir(path: string): void {
    this.checkMutation("mkdir", path);
    this.inner.mkdir(path);
  }
  readdir(path: string): string[] {
    return this.inner.readdir(path).filter((name) => !this.missing.has(`${path}/${name}`));
  }
  rmdir(path: string): void {
    this.checkMutation("rmdir", path);
    this.inner.rmdir(path);
  }
  fsyncDir(path: string): void {
    this.inner.fsyncDir(path);
  }
}
