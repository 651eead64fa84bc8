// Summarizes a V8/JSC-style .cpuprofile (nodes with call frames, samples with time deltas): where a
// process spent its CPU, by function and by source file, self time only.
import { readFileSync } from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface Profile {
  nodes: ProfileNode[];
  samples?: number[];
  timeDeltas?: number[];
}

export interface ProfileSummary {
  samples: number;
  /** Samples x the sampling interval: the CPU time the profile saw. */
  busy_ms: number;
  /** From the first to the last sample. */
  wall_ms: number;
  busy_pct_of_wall: number | null;
  idle_pct: number;
  top_functions: { fn: string; at: string; self_pct: number }[];
  top_files: { file: string; self_pct: number }[];
}

/** Bun's default --cpu-prof-interval. */
const sampleIntervalUs = 1000;

export function summarizeProfile(path: string, top = 15): ProfileSummary {
  const p = JSON.parse(readFileSync(path, "utf8")) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  // Percentages count samples: the profiler samples only while the thread runs, so a time-delta weighting
  // would charge the idle gap before a sample to whatever ran next.
  const selfUs = new Map<number, number>();
  let totalUs = 0;
  let wallUs = 0;
  if (p.samples && p.samples.length > 0) {
    for (const id of p.samples) selfUs.set(id, (selfUs.get(id) ?? 0) + sampleIntervalUs);
    totalUs = p.samples.length * sampleIntervalUs;
    for (const dt of p.timeDeltas ?? []) wallUs += Math.max(0, dt);
  } else {
    for (const n of p.nodes) {
      selfUs.set(n.id, (n.hitCount ?? 0) * sampleIntervalUs);
      totalUs += (n.hitCount ?? 0) * sampleIntervalUs;
    }
  }
  if (totalUs === 0) throw new Error(`${path}: no samples`);
  const fns = new Map<string, number>();
  const files = new Map<string, number>();
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    const n = byId.get(id);
    if (!n) continue;
    const name = n.callFrame.functionName || "(anonymous)";
    if (name === "(idle)") idleUs += us;
    const file = shortUrl(n.callFrame.url) || "(native)";
    const key = `${name}\u0000${file}:${n.callFrame.lineNumber + 1}`;
    fns.set(key, (fns.get(key) ?? 0) + us);
    files.set(file, (files.get(file) ?? 0) + us);
  }
  const pct = (us: number) => Math.round((us / totalUs) * 1000) / 10;
  return {
    samples: p.samples?.length ?? 0,
    busy_ms: Math.round(totalUs / 1000),
    wall_ms: Math.round(wallUs / 1000),
    busy_pct_of_wall: wallUs > 0 ? Math.round((totalUs / wallUs) * 1000) / 10 : null,
    idle_pct: pct(idleUs),
    top_functions: [...fns]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, us]) => {
        const [fn, at] = k.split("\u0000");
        return { fn: fn!, at: at!, self_pct: pct(us) };
      }),
    top_files: [...files]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 8)
      .map(([file, us]) => ({ file, self_pct: pct(us) })),
  };
}

function shortUrl(url: string): string {
  const i = url.indexOf("/src/");
  if (i >= 0) return url.slice(i + 1);
  const j = url.indexOf("node_modules/");
  if (j >= 0) return url.slice(j);
  return url.replace(/^file:\/\//, "");
}
