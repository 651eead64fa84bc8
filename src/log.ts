// Structured logs: one JSON object per line on stderr, one line per important event (election won, role
// change, broker down, failover step). Every layer above raft/ and storage/ logs through this.
export type LogLevel = "debug" | "info" | "warn" | "error";
const rank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type Logger = {
  debug(event: string, fields?: Record<string, unknown>): void;
  info(event: string, fields?: Record<string, unknown>): void;
  warn(event: string, fields?: Record<string, unknown>): void;
  error(event: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
};

export function createLogger(
  level: LogLevel = "info",
  base: Record<string, unknown> = {},
  write: (line: string) => void = (line) => process.stderr.write(line + "\n"),
): Logger {
  const min = rank[level];
  const emit = (lvl: LogLevel, event: string, fields?: Record<string, unknown>) => {
    if (rank[lvl] < min) return;
    write(JSON.stringify({ ts: new Date().toISOString(), level: lvl, ...base, event, ...fields }));
  };
  return {
    debug: (e, f) => emit("debug", e, f),
    info: (e, f) => emit("info", e, f),
    warn: (e, f) => emit("warn", e, f),
    error: (e, f) => emit("error", e, f),
    child: (fields) => createLogger(level, { ...base, ...fields }, write),
  };
}

/** For tests and library users that want silence. */
export const silentLogger: Logger = createLogger("error", {}, () => {});
