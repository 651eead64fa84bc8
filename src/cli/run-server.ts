// Runs one server mode in the foreground: start it, log where it listens, and on SIGTERM or SIGINT stop it
// cleanly and exit 0. The "listening" log line is a contract: `goulette dev` reads the bound address from
// it when it asked for port 0.
import { createLogger, type LogLevel } from "../log";

export interface RunningServer {
  address: string; // host:port actually bound
  stop(): Promise<void>;
}

export type StartServer<O> = (options: O) => Promise<RunningServer>;

export type ServerMode = "broker" | "sentinel";

/** The structured log event every server mode emits once bound: {"event":"listening","mode":..,"address":..}. */
export const listeningEvent = "listening";

const stopTimeoutMs = 10_000;

export interface RunServerHooks {
  /** Resolves with the signal name that asked us to stop; defaults to SIGTERM/SIGINT on this process. */
  stopRequested?: Promise<string>;
  writeErr?: (line: string) => void;
  /**
   * Also stop when stdin reaches its end. `goulette dev` holds each child's stdin open and never writes,
   * so a dev killed with SIGKILL (no chance to stop its children) still takes them down with it.
   */
  stopWhenStdinCloses?: boolean;
}

export async function runServer<O extends { logLevel: LogLevel }>(
  mode: ServerMode,
  options: O,
  start: StartServer<O>,
  logFields: Record<string, unknown>,
  hooks: RunServerHooks = {},
): Promise<number> {
  const writeErr = hooks.writeErr ?? ((line: string) => process.stderr.write(line + "\n"));
  const log = createLogger(options.logLevel, { mode, ...logFields }, writeErr);
  const stopRequested = Promise.race([
    hooks.stopRequested ?? signalled(),
    ...(hooks.stopWhenStdinCloses ? [stdinClosed()] : []),
  ]);

  let server: RunningServer;
  try {
    server = await start(options);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    // Bun's bind error omits the port; name the address we were asked for.
    const listen = "listen" in options ? options.listen : undefined;
    log.error("start_failed", { error: message, listen });
    return 1;
  }
  if (typeof server.address !== "string" || server.address === "") {
    throw new Error(`start${mode} resolved without an address`);
  }
  // A contract line (`goulette dev` and scripts wait for it), so it is written whatever the log level.
  createLogger("info", { mode, ...logFields }, writeErr).info(listeningEvent, { address: server.address, pid: process.pid });

  const signal = await stopRequested;
  log.info("stopping", { signal });
  let timer: Timer | undefined;
  const timedOut = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), stopTimeoutMs)));
  try {
    const outcome = await Promise.race([server.stop().then(() => "stopped" as const), timedOut]);
    if (outcome === "timeout") {
      log.error("stop_timeout", { timeoutMs: stopTimeoutMs });
      return 1;
    }
  } catch (e) {
    log.error("stop_failed", { error: e instanceof Error ? e.message : String(e) });
    return 1;
  } finally {
    clearTimeout(timer);
  }
  log.info("stopped");
  return 0;
}

async function stdinClosed(): Promise<string> {
  const reader = Bun.stdin.stream().getReader();
  while (!(await reader.read()).done) {
    // Input is not a command channel; bytes are read only to notice the end.
  }
  return "stdin closed";
}

/** First SIGTERM/SIGINT asks for a clean stop; a second one means "now" and exits at once. */
function signalled(): Promise<string> {
  return new Promise((resolve) => {
    let seen = false;
    const on = (signal: NodeJS.Signals) => {
      if (seen) process.exit(130);
      seen = true;
      resolve(signal);
    };
    process.on("SIGTERM", on);
    process.on("SIGINT", on);
  });
}
