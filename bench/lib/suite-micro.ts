// "micro": the component benchmarks other folders own (bench/wire.ts, raft.ts, storage.ts), run as they
// are, their JSON lines passed through with the suite and bench name added.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { emit, errorText, progress } from "./emit";
import { repoRoot } from "./goulette";
import { jsonLines, runToEnd } from "./proc";
import { type RunSettings } from "./settings";

const micro = [
  { name: "wire", args: [] as string[] },
  { name: "raft", args: [] as string[] },
  { name: "storage", args: [] as string[], quickArgs: ["--quick"] },
];

export async function microSuite(s: RunSettings): Promise<void> {
  for (const m of micro) {
    const file = join(repoRoot, "bench", `${m.name}.ts`);
    if (!existsSync(file)) {
      emit({ suite: "micro", bench: m.name, skipped: `${file} not found` });
      continue;
    }
    progress(`micro: bench/${m.name}.ts`);
    try {
      const args = s.scale < 1 && m.quickArgs ? m.quickArgs : m.args;
      const r = await runToEnd(`bench/${m.name}`, [process.execPath, file, ...args], s.runTimeoutMs, { cwd: repoRoot });
      const lines = jsonLines(r.stdout);
      for (const l of lines) emit({ suite: "micro", bench: m.name, ...l });
      if (r.code !== 0 || lines.length === 0) {
        emit({ suite: "micro", bench: m.name, error: r.timedOut ? "timed out" : `exit code ${r.code}, ${lines.length} lines: ${r.stderrTail}` });
      }
    } catch (e) {
      emit({ suite: "micro", bench: m.name, error: errorText(e) });
    }
  }
}
