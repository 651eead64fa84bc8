// Output discipline of `bun run bench`: stdout carries JSON lines only (one result each), so the run can be
// piped into jq or a file; everything meant for a person (progress, child logs) goes to stderr.

export type Line = Record<string, unknown>;

const emitted: Line[] = [];

/** Prints one result line on stdout and keeps it, so later lines (ratios) can refer to it. */
export function emit(line: Line): void {
  emitted.push(line);
  process.stdout.write(JSON.stringify(line) + "\n");
}

export function emittedLines(): readonly Line[] {
  return emitted;
}

export function progress(text: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${text}\n`);
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Rounds to a few significant decimals so lines stay short and diffable. */
export function round(x: number, decimals = 2): number {
  const f = 10 ** decimals;
  return Math.round(x * f) / f;
}
