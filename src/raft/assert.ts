// A broken invariant stops the node loudly: continuing would risk acknowledging data that is not safe.

export class RaftInvariantError extends Error {
  override name = "RaftInvariantError";
}

export function assert(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) {
    throw new RaftInvariantError(typeof message === "string" ? message : message());
  }
}
