import type { StorageErrorCode } from "./types";

/** A storage failure with a code the broker maps onto the wire; details say which file and where. */
export class StorageError extends Error {
  constructor(
    readonly code: StorageErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = "StorageError";
  }
}

/** Maps an OS error from the file layer onto a storage code; full and read-only disks get their own. */
export function storageErrorFromOs(err: unknown, what: string, path: string): StorageError {
  if (err instanceof StorageError) return err;
  const osCode = typeof err === "object" && err !== null && "code" in err ? String(err.code) : "";
  const reason = err instanceof Error ? err.message : String(err);
  const details = { file: path, osCode };
  if (osCode === "ENOSPC" || osCode === "EDQUOT") {
    return new StorageError("DISK_FULL", `disk full while ${what} ${path}: ${reason}`, details);
  }
  if (osCode === "EROFS" || osCode === "EACCES" || osCode === "EPERM") {
    return new StorageError("READ_ONLY", `not writable while ${what} ${path}: ${reason}`, details);
  }
  return new StorageError("IO", `I/O error while ${what} ${path}: ${reason}`, details);
}
