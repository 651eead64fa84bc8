/** Exponential backoff with full jitter, capped: spreads retries of many clients after a failover. */
export function backoffMs(attempt: number, baseMs = 20, maxMs = 1000, random: () => number = Math.random): number {
  if (attempt < 0) throw new Error(`backoff attempt must be >= 0, got ${attempt}`);
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 20));
  return Math.max(1, Math.round(ceiling / 2 + (random() * ceiling) / 2));
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
