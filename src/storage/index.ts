export * from "./types";
export { StorageError } from "./errors";
export { parseFsyncPolicy, formatFsyncPolicy } from "./fsync-policy";
export { realFileLayer, FaultyFileLayer } from "./file-layer";
export { writeFileAtomic } from "./atomic-file";
export { Wal } from "./wal";
export { PartitionLog } from "./partition-log";
