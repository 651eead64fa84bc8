// How to start Goulette for a bench run: the compiled executable when it is at least as new as every
// source file (so a stale build is never measured), else Bun on the sources.
import { existsSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";

export const repoRoot = resolve(import.meta.dir, "../..");

export interface GouletteCommand {
  argv: string[];
  kind: "compiled" | "source";
}

let chosen: GouletteCommand | undefined;

/** Chosen once per run, so every suite of a run measures the same build even if one lands meanwhile. */
export function gouletteCommand(): GouletteCommand {
  chosen ??= choose();
  return chosen;
}

function choose(): GouletteCommand {
  // A given build (an A/B comparison of two executables), as is.
  const given = process.env.GOULETTE_BENCH_BINARY;
  if (given) return { argv: [resolve(given)], kind: "compiled" };
  const binary = join(repoRoot, "dist/goulette");
  if (existsSync(binary) && statSync(binary).mtimeMs >= newestMtimeMs(join(repoRoot, "src"))) {
    return { argv: [binary], kind: "compiled" };
  }
  return { argv: [process.execPath, join(repoRoot, "src/main.ts")], kind: "source" };
}

/** Bun on the sources with the CPU profiler on (a compiled executable cannot take runtime flags). */
export function profiledCommand(profileDir: string, name: string): string[] {
  return [
    process.execPath,
    "--cpu-prof",
    `--cpu-prof-dir=${profileDir}`,
    `--cpu-prof-name=${name}.cpuprofile`,
    join(repoRoot, "src/main.ts"),
  ];
}

function newestMtimeMs(dir: string): number {
  let newest = 0;
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop()!;
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) stack.push(p);
      else if (e.isFile()) newest = Math.max(newest, statSync(p).mtimeMs);
    }
  }
  return newest;
}
