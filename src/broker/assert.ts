/** A broken invariant stops the operation loudly rather than corrupting data. */
export function assert(cond: unknown, message: string): asserts cond {
  if (!cond) throw new Error(`invariant violated: ${message}`);
}
