// The optional TOML config file (`--config goulette.toml`). Keys are the flag names without dashes
// (`data-dir = "./data/b1"`) or the option names (`dataDir`). Top-level keys apply to every mode; a
// `[broker]` or `[sentinel]` table applies to that mode only and wins over the top level, so one file can
// describe a whole machine. Unknown keys are errors: a misspelt key silently ignored is a wrong setting.
import { readFileSync } from "node:fs";
import { UsageError } from "./usage-error";

export type ConfigValues = ReadonlyMap<string, { text: string; origin: string }>;

const maxConfigBytes = 1024 * 1024;

export interface ConfigKeys {
  mode: string; // "broker" | "sentinel"
  flags: ReadonlySet<string>; // this mode's flag names, e.g. "data-dir"
  aliases: ReadonlyMap<string, string>; // option name -> flag name, e.g. "dataDir" -> "data-dir"
  otherModesKeys: ReadonlySet<string>; // other modes' keys: ignored at top level so one file serves all
  sections: ReadonlySet<string>; // every mode's table name
}

export function readConfigFile(path: string, keys: ConfigKeys): ConfigValues {
  let text: string;
  try {
    const bytes = readFileSync(path);
    if (bytes.byteLength > maxConfigBytes) throw new Error(`larger than ${maxConfigBytes} bytes`);
    text = bytes.toString("utf8");
  } catch (e) {
    throw new UsageError(`--config "${path}": cannot read: ${firstLine(e)}`);
  }
  let doc: unknown;
  try {
    doc = Bun.TOML.parse(text);
  } catch (e) {
    throw new UsageError(`--config "${path}": not valid TOML: ${firstLine(e)}`);
  }
  if (!isTable(doc)) throw new UsageError(`--config "${path}": expected a TOML table`);
  // A top-level `sentinel = "..."` (the broker's flag) and a `[sentinel]` table cannot both exist in TOML;
  // such files spell the broker's list `sentinels`, which is why that alias exists.

  const out = new Map<string, { text: string; origin: string }>();
  const take = (table: Record<string, unknown>, prefix: string, strict: boolean) => {
    for (const [key, value] of Object.entries(table)) {
      if (prefix === "" && keys.sections.has(key) && isTable(value)) continue;
      const flag = keys.flags.has(key) ? key : keys.aliases.get(key);
      const origin = `${path}: ${prefix}${key}`;
      if (flag === undefined || flag === "config") {
        if (!strict && keys.otherModesKeys.has(key)) continue;
        throw new UsageError(`${path}: unknown key "${prefix}${key}" for goulette ${keys.mode}`);
      }
      out.set(flag, { text: valueText(value, origin), origin });
    }
  };
  take(doc, "", false);
  const section = doc[keys.mode];
  if (section !== undefined) {
    if (!isTable(section)) throw new UsageError(`[${keys.mode}] in ${path}: expected a table`);
    take(section, `${keys.mode}.`, true);
  }
  return out;
}

function valueText(value: unknown, origin: string): string {
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "bigint" || typeof value === "boolean") return String(value);
  if (Array.isArray(value) && value.every((v) => typeof v === "string" || typeof v === "number")) {
    return value.map(String).join(",");
  }
  throw new UsageError(`${origin}: expected a string, number or list`);
}

function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

function firstLine(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  return message.split("\n")[0] ?? "";
}
