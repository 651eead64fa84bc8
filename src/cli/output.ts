import { describeError } from "../client/errors";

/** Where command output goes; swapped in tests to capture it. */
export interface Sink {
  write(text: string): void;
  /** Resolves once everything written so far has been handed to the OS. */
  flush(): Promise<void>;
}

function fileSink(writer: ReturnType<typeof Bun.stdout.writer>): Sink {
  return {
    write: (text) => void writer.write(text),
    // process.exit() drops what a pipe has not taken yet, so commands await this before they return.
    flush: async () => void (await writer.flush()),
  };
}

let stdoutSink: Sink | undefined;
let stderrSink: Sink | undefined;

export function io(): { out: Sink; err: Sink } {
  stdoutSink ??= fileSink(Bun.stdout.writer());
  stderrSink ??= fileSink(Bun.stderr.writer());
  return { out: stdoutSink, err: stderrSink };
}

/** For tests: route output to these sinks (undefined restores the real stdout/stderr). */
export function setIO(sinks: { out: Sink; err: Sink } | undefined): void {
  stdoutSink = sinks?.out;
  stderrSink = sinks?.err;
}

/** A sink that keeps what it is given, for tests. */
export function memorySink(): Sink & { text(): string } {
  let buf = "";
  return { write: (t) => void (buf += t), flush: async () => {}, text: () => buf };
}

export type Format = "table" | "json";

export function parseFormat(value: string | undefined): Format {
  if (value === undefined || value === "table" || value === "text") return "table";
  if (value === "json") return "json";
  throw new UsageError(`--format must be json or table, got ${value}`);
}

/** A mistake in how the command was called: exit code 2, like most Unix tools. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Columns padded to their widest cell, two spaces apart; numbers right-aligned. */
export function formatTable(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map((c) => String(c)))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  const numeric = headers.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === "number"));
  return (
    cells
      .map((r) =>
        r
          .map((c, i) => (numeric[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
          .join("  ")
          .trimEnd(),
      )
      .join("\n") + "\n"
  );
}

export function jsonLine(value: unknown): string {
  return JSON.stringify(value) + "\n";
}

/** One line, whatever the error: newlines folded so scripts can read the last line of stderr. */
export function errorLine(err: unknown): string {
  const text = err instanceof UsageError ? err.message : describeError(err);
  return `goulette: ${text.replace(/\s*\n\s*/g, "; ")}\n`;
}

/** Runs a command body: prints a thrown error as one line on stderr, flushes both streams, returns the exit code. */
export async function runCommand(body: () => Promise<number>): Promise<number> {
  const { out, err } = io();
  let code: number;
  try {
    code = await body();
  } catch (e) {
    err.write(errorLine(e));
    code = e instanceof UsageError ? 2 : 1;
  }
  await out.flush();
  await err.flush();
  return code;
}
