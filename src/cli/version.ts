// `goulette version`: what was built, from which commit, on which Bun. build.ts defines the two
// GOULETTE_BUILD_* constants; run from source (`bun src/main.ts`) they are absent and we fall back.
import { version as packageVersion } from "../../package.json";
import { parseArgs, type CommandSpec } from "./args";
import { Settings, type Env } from "./settings";
import { UsageError } from "./usage-error";

declare const GOULETTE_BUILD_VERSION: string;
declare const GOULETTE_BUILD_COMMIT: string;

export interface VersionInfo {
  version: string;
  bun: string;
  commit: string;
}

export function versionInfo(): VersionInfo {
  return {
    version: typeof GOULETTE_BUILD_VERSION === "string" ? GOULETTE_BUILD_VERSION : packageVersion,
    bun: Bun.version,
    commit: typeof GOULETTE_BUILD_COMMIT === "string" && GOULETTE_BUILD_COMMIT !== "" ? GOULETTE_BUILD_COMMIT : "unknown",
  };
}

export const versionCommand: CommandSpec = {
  name: "version",
  summary: "Print the goulette version, the Bun version and the git commit it was built from.",
  flags: [{ flag: "format", value: "text|json", help: "output format (default text)" }],
};

export function runVersion(argv: readonly string[], env: Env, write: (s: string) => void): number {
  const parsed = parseArgs(versionCommand, argv);
  if (parsed.kind === "help") {
    write(parsed.text);
    return 0;
  }
  const setting = new Settings(parsed.flags, env).get("format") ?? { text: "text", origin: "--format" };
  const format = setting.text;
  const info = versionInfo();
  if (format === "json") write(JSON.stringify(info) + "\n");
  else if (format === "text") write(`goulette ${info.version}\nbun      ${info.bun}\ncommit   ${info.commit}\n`);
  else throw new UsageError(`${setting.origin} "${format}": expected text or json`);
  return 0;
}
