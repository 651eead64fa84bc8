// Parsers for the values that flags, GOULETTE_* variables and the config file share. Each takes the raw
// text plus where it came from, so an error names the exact flag, variable or file key to fix.
import type { LogLevel } from "../log";
import { formatFsyncPolicy, parseFsyncPolicy } from "../storage/fsync-policy";
import { UsageError } from "./usage-error";

/** Where a setting's text came from, e.g. `--listen`, `GOULETTE_LISTEN`, `listen in goulette.toml`. */
export type Origin = string;

const portMax = 65535;

/** "host:port" or "[v6]:port". allowPortZero is for listen addresses, where 0 asks the OS to pick. */
export function parseAddress(text: string, origin: Origin, allowPortZero: boolean): string {
  const match = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):([^:]*)$/.exec(text);
  if (!match) throw new UsageError(`${origin} "${text}": expected host:port, e.g. 127.0.0.1:7070`);
  const portText = match[2] ?? "";
  const minPort = allowPortZero ? 0 : 1;
  if (!/^\d{1,5}$/.test(portText) || Number(portText) < minPort || Number(portText) > portMax) {
    throw new UsageError(`${origin} "${text}": port must be an integer ${minPort}-${portMax}`);
  }
  return `${match[1]}:${Number(portText)}`;
}

/** A comma-separated list of dialable addresses; at least one. */
export function parseAddressList(text: string, origin: Origin): string[] {
  const parts = text.split(",").map((p) => p.trim());
  if (parts.length === 0 || parts.some((p) => p === "")) {
    throw new UsageError(`${origin} "${text}": expected host:port[,host:port...]`);
  }
  const addresses = parts.map((p) => parseAddress(p, origin, false));
  if (new Set(addresses).size !== addresses.length) throw new UsageError(`${origin} "${text}": lists an address twice`);
  return addresses;
}

/** A whole number in [min, max]; rejects "1.5", "1e3", "0x10" and empty text. */
export function parseInteger(text: string, origin: Origin, min: number, max: number): number {
  if (!/^-?\d+$/.test(text.trim())) throw new UsageError(`${origin} "${text}": expected an integer ${min}-${max}`);
  const n = Number(text.trim());
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`${origin} "${text}": expected an integer ${min}-${max}`);
  }
  return n;
}

/** The storage layer owns the policy grammar; we only turn its error into a usage error with an origin. */
export function parseFsync(text: string, origin: Origin): string {
  try {
    return formatFsyncPolicy(parseFsyncPolicy(text));
  } catch {
    throw new UsageError(`${origin} "${text}": fsync policy must be always, never or interval:<ms> (ms 1-60000)`);
  }
}

const logLevels: readonly LogLevel[] = ["debug", "info", "warn", "error"];

export function parseLogLevel(text: string, origin: Origin): LogLevel {
  const level = logLevels.find((l) => l === text);
  if (!level) throw new UsageError(`${origin} "${text}": log level must be one of ${logLevels.join(", ")}`);
  return level;
}

export function parseNonEmpty(text: string, origin: Origin): string {
  if (text.trim() === "") throw new UsageError(`${origin}: must not be empty`);
  return text;
}
