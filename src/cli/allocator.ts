// Allocator settings for the long-running modes, applied by replacing the process image once at start.
//
// Bun's allocator (mimalloc) hands freed memory back to the kernel after a few milliseconds. A broker
// frees and reallocates batch-sized buffers (socket reads, frames, WAL rounds) hundreds of times a
// second, so each one came back as fresh pages: a page fault per 4 KiB (costly in a virtual machine)
// and, when the memory was returned, a TLB shootdown across the process's threads. Measured on the
// 3-broker benchmark (1 KiB, window 256, RF3, same machine, interleaved runs): broker CPU per 1,000
// messages 70-74 ms -> 43-48 ms, throughput +25-30%, at the cost of ~100 MB more resident memory per
// broker (memory is kept at its peak instead of returned). The setting is read once, when the
// allocator starts, so it cannot be changed from JavaScript: the process re-executes itself with it
// (same pid, same arguments), before anything else happens.

/** The allocator setting and the value the servers want. A user who sets it keeps their own value. */
export const ALLOCATOR_ENV = "MIMALLOC_PURGE_DELAY";
export const ALLOCATOR_VALUE = "-1"; // never give freed memory back to the kernel

/**
 * Re-executes the current process with the allocator setting unless it is already there (or the runtime
 * cannot re-execute). Returns only when no re-exec happened.
 */
export function reexecWithAllocatorSettings(self: readonly string[], args: readonly string[], env: Record<string, string | undefined>): void {
  if (env[ALLOCATOR_ENV] !== undefined) return;
  // Runtime flags (bun --cpu-prof ...) start helpers that signal the main thread (the sampling profiler);
  // a signal pending across execve would kill the new image. Whoever passes such flags sets the variable.
  if (process.execArgv.length > 0) return;
  const execve = (process as { execve?: (file: string, args: string[], env: Record<string, string>) => never }).execve;
  if (typeof execve !== "function") return;
  const nextEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) nextEnv[k] = v;
  nextEnv[ALLOCATOR_ENV] = ALLOCATOR_VALUE;
  const [file, ...rest] = self;
  if (file === undefined) return;
  try {
    execve.call(process, file, [file, ...rest, ...args], nextEnv);
  } catch {
    // Not fatal: the server runs as before, only with more page faults.
  }
}
