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
  sampled_ms: number;
  idle_pct: number;
  top_functions: { fn: string; at: string; self_pct: number }[];
  top_files: { file: string; self_pct: number }[];
}

export function summarizeProfile(path: string, top = 15): ProfileSummary {
  const p = JSON.parse(readFileSync(path, "utf8")) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  let totalUs = 0;
  if (p.samples && p.timeDeltas && p.samples.length === p.timeDeltas.length) {
    for (let i = 0; i < p.samples.length; i++) {
      // A sample's time is the delta to the next one; the first delta is the gap since the profile began.
      const dt = Math.max(0, p.timeDeltas[i + 1] ?? 0);
      selfUs.set(p.samples[i]!, (selfUs.get(p.samples[i]!) ?? 0) + dt);
      totalUs += dt;
    }
  } else {
    for (const n of p.nodes) {
      selfUs.set(n.id, (n.hitCount ?? 0) * 1000);
      totalUs += (n.hitCount ?? 0) * 1000;
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
    sampled_ms: Math.round(totalUs / 1000),
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
