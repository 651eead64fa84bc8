import type { FsyncPolicy } from "./types";

const INTERVAL_MS_MAX = 60_000;

/** Parses "always" | "interval:<ms>" | "never" (the --fsync flag and config value). */
export function parseFsyncPolicy(text: string): FsyncPolicy {
  const s = text.trim();
  if (s === "always" || s === "never") return s;
  const m = /^interval:(\d+)$/.exec(s);
  if (m) {
    const intervalMs = Number(m[1]);
    if (intervalMs >= 1 && intervalMs <= INTERVAL_MS_MAX) return { intervalMs };
  }
  throw new Error(
    `invalid fsync policy "${text}": expected "always", "never" or "interval:<ms>" with 1 <= ms <= ${INTERVAL_MS_MAX}`,
  );
}

export function formatFsyncPolicy(p: FsyncPolicy): string {
  return typeof p === "string" ? p : `interval:${p.intervalMs}`;
}
