import { ErrorCode } from "../proto/goulette_pb";
import { WireError } from "../wire/errors";

export { WireError };

/** Raised by the client when it gives up: the message says what was tried, where and for how long. */
export class ClientError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = "ClientError";
    this.code = code;
  }
}

/** The error code of anything a call may throw; connection loss and unknown throwables count as UNKNOWN. */
export function codeOf(err: unknown): ErrorCode {
  if (err instanceof WireError || err instanceof ClientError) return err.code;
  return ErrorCode.UNKNOWN;
}

/** True when the request may not have reached the peer, or the peer's answer was lost. */
export function isTransportFailure(err: unknown): boolean {
  if (err instanceof WireError) return err.transport !== undefined;
  return !(err instanceof ClientError);
}

/** Errors after which the same request may succeed later, possibly on another broker. */
const retriable = new Set<ErrorCode>([
  ErrorCode.UNKNOWN,
  ErrorCode.TIMEOUT,
  ErrorCode.SHUTTING_DOWN,
  ErrorCode.NOT_LEADER,
  ErrorCode.LEADER_NOT_AVAILABLE,
  ErrorCode.NOT_ENOUGH_REPLICAS,
  ErrorCode.UNKNOWN_PARTITION, // a partition whose replicas are still being placed
  ErrorCode.OUT_OF_ORDER_SEQUENCE, // an earlier batch is being retried; ours follows it
  // A replica that cannot write hands its leadership to one that can (or is taken for dead when its WAL
  // failed), so the same batch may succeed on another broker; with every replica's disk full it still
  // fails, with this error, once the delivery timeout is spent.
  ErrorCode.STORAGE_ERROR,
  ErrorCode.DISK_FULL,
]);

/** The broker answered but cannot store anything for this partition: try the other replicas. */
export function isStorageFailure(err: unknown): boolean {
  const code = codeOf(err);
  return code === ErrorCode.STORAGE_ERROR || code === ErrorCode.DISK_FULL;
}

export function isRetriable(err: unknown): boolean {
  if (isTransportFailure(err)) return true;
  return retriable.has(codeOf(err));
}

/** One short line for people: "NOT_LEADER: not the leader of t/0". */
export function describeError(err: unknown): string {
  if (err instanceof WireError) return err.message ? `${err.codeName}: ${err.message}` : err.codeName;
  if (err instanceof Error) return err.message;
  return String(err);
}
