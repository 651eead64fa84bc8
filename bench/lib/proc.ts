// Child processes of the bench run. Every process is started through here and recorded, so a suite that
// fails, a timeout, or Ctrl-C still stops all of them (stopAll), whole process groups included: a peer
// script starts its servers in the background, and only killing its group reaches them.
import type { Subprocess } from "bun";
import { progress } from "./emit";

export interface Child {
  name: string;
  proc: Subprocess<"pipe" | "ignore", "pipe", "pipe">;
  /** Its own process group (detached), so stop() reaches what it started too. */
  group: boolean;
  /** Whole stdout, once it has exited. */
  stdout: Promise<string>;
  /** stdout lines so far (at most 100,000 kept). */
  stdoutLines: string[];
  /** The last stderr lines (forwarded to our stderr as they come with BENCH_VERBOSE=1). */
  stderrLines: string[];
}

const running = new Set<Child>();
/** Children's own logs are noisy at info level: kept in memory (tail shown on failure) unless BENCH_VERBOSE=1. */
const verbose = process.env.BENCH_VERBOSE === "1";
const stopGraceMs = 10_000;

export interface SpawnOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  /** New process group: stop() kills the group, reaching grandchildren started in the background. */
  group?: boolean;
  /** Never forward stderr, even with BENCH_VERBOSE=1 (still collected in stderrLines). */
  quietStderr?: boolean;
  /** Called for each stderr line (e.g. to catch a "listening" event). */
  onStderrLine?: (line: string) => void;
  /** Keep stdin open as a pipe (dev children stop when it closes). */
  stdinPipe?: boolean;
}

export function spawn(name: string, cmd: string[], o: SpawnOptions = {}): Child {
  const proc = Bun.spawn(cmd, {
    cwd: o.cwd,
    env: { ...process.env, ...o.env } as Record<string, string>,
    stdin: o.stdinPipe ? "pipe" : "ignore",
    stdout: "pipe",
    stderr: "pipe",
    detached: o.group === true,
  });
  const stderrLines: string[] = [];
  const stdoutLines: string[] = [];
  const child: Child = {
    name,
    proc,
    group: o.group === true,
    stdout: readLines(proc.stdout, (line) => {
      if (stdoutLines.length < 100_000) stdoutLines.push(line);
    }).then(() => stdoutLines.join("\n")),
    stdoutLines,
    stderrLines,
  };
  void readLines(proc.stderr, (line) => {
    if (stderrLines.length >= 10_000) stderrLines.splice(0, 5_000);
    stderrLines.push(line);
    o.onStderrLine?.(line);
    if (verbose && !o.quietStderr) process.stderr.write(`  ${name}| ${line}\n`);
  });
  running.add(child);
  void proc.exited.then(() => running.delete(child));
  return child;
}

export function alive(c: Child): boolean {
  return c.proc.exitCode === null && c.proc.signalCode === null;
}

export function signal(c: Child, sig: "SIGKILL" | "SIGTERM" | "SIGINT"): void {
  if (!alive(c) && !c.group) return;
  try {
    if (c.group) process.kill(-c.proc.pid, sig);
    else c.proc.kill(sig);
  } catch {
    // Already gone: the group may have emptied between our check and the kill.
  }
}

/** SIGTERM, then SIGKILL after the grace period. Resolves when the process has exited. */
export async function stop(c: Child, graceMs = stopGraceMs): Promise<void> {
  if (!alive(c)) {
    if (c.group) signal(c, "SIGKILL"); // leftovers of the group
    return;
  }
  signal(c, "SIGTERM");
  const late = await Promise.race([c.proc.exited.then(() => false), Bun.sleep(graceMs).then(() => true)]);
  if (late) {
    progress(`${c.name} ignored SIGTERM for ${graceMs} ms; SIGKILL`);
    signal(c, "SIGKILL");
    await c.proc.exited;
  }
  if (c.group) signal(c, "SIGKILL");
}

/** Stops every process this run started and has not seen exit. */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((c) => stop(c)));
}

export interface RunResult {
  code: number | null;
  timedOut: boolean;
  stdout: string;
  stderrTail: string;
}

/** Runs a command to its end (or timeoutMs, then stops its group) and returns its stdout. */
export async function runToEnd(name: string, cmd: string[], timeoutMs: number, o: SpawnOptions = {}): Promise<RunResult> {
  const c = spawn(name, cmd, { group: true, ...o });
  let timer: Timer | undefined;
  const timedOut = await Promise.race([
    c.proc.exited.then(() => false),
    new Promise<boolean>((r) => (timer = setTimeout(() => r(true), timeoutMs))),
  ]);
  clearTimeout(timer);
  if (timedOut) {
    progress(`${name}: no end after ${timeoutMs} ms, stopping it`);
    await stop(c);
  } else if (c.group) {
    signal(c, "SIGKILL"); // nothing of the group outlives the command
  }
  return {
    code: c.proc.exitCode,
    timedOut,
    stdout: await c.stdout,
    stderrTail: c.stderrLines.slice(-5).join(" | "),
  };
}

/** The JSON objects among a command's stdout lines. */
export function jsonLines(stdout: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of stdout.split("\n")) {
    const t = line.trim();
    if (!t.startsWith("{")) continue;
    try {
      const v: unknown = JSON.parse(t);
      if (typeof v === "object" && v !== null && !Array.isArray(v)) out.push(v as Record<string, unknown>);
    } catch {
      // Not JSON after all; the caller only wants result lines.
    }
  }
  return out;
}

async function readLines(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void): Promise<void> {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of stream) {
    pending += decoder.decode(chunk, { stream: true });
    let nl = pending.indexOf("\n");
    while (nl >= 0) {
      onLine(pending.slice(0, nl));
      pending = pending.slice(nl + 1);
      nl = pending.indexOf("\n");
    }
  }
  if (pending !== "") onLine(pending);
}
