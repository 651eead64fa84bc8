// Turns argv into raw flag text with commander, and nothing more: defaults, GOULETTE_* variables, the
// config file and validation are layered on top by config.ts, because commander alone cannot tell "not
// given" apart from a default, and precedence needs exactly that.
import { Command, CommanderError, Option } from "commander";
import { UsageError } from "./usage-error";

export interface FlagSpec {
  flag: string; // long name without dashes, e.g. "data-dir"
  value?: string; // placeholder shown in help; absent for boolean switches
  help: string;
  env?: false; // set when the flag has no GOULETTE_* twin (e.g. --help-only switches)
}

export interface CommandSpec {
  name: string; // as typed after `goulette`, e.g. "broker"
  summary: string;
  flags: readonly FlagSpec[];
  positionals?: readonly string[]; // e.g. ["NAME"]; none by default, extra words are an error
  footer?: string; // examples shown after the flags in --help
}

export type ParsedArgs =
  | { kind: "help"; text: string }
  | { kind: "args"; flags: ReadonlyMap<string, string | true>; positionals: string[] };

/** GOULETTE_DATA_DIR for "data-dir". */
export function envName(flag: string): string {
  return `GOULETTE_${flag.toUpperCase().replace(/-/g, "_")}`;
}

export function parseArgs(spec: CommandSpec, argv: readonly string[]): ParsedArgs {
  let out = "";
  const cmd = new Command(`goulette ${spec.name}`)
    .description(spec.summary)
    .exitOverride()
    .configureOutput({ writeOut: (s) => (out += s), writeErr: () => {}, outputError: () => {} })
    .allowExcessArguments(false)
    .helpOption("-h, --help", "show this help");
  for (const p of spec.positionals ?? []) cmd.argument(`[${p}]`);
  const options = spec.flags.map((f) => {
    const twin = f.env === false ? "" : ` [env ${envName(f.flag)}]`;
    const option = new Option(f.value ? `--${f.flag} <${f.value}>` : `--${f.flag}`, f.help + twin);
    cmd.addOption(option);
    return { flag: f.flag, key: option.attributeName() };
  });
  if (spec.footer) cmd.addHelpText("after", `\n${spec.footer}`);
  // commander would otherwise run process.exit itself; we keep control of exit codes and output.
  cmd.action(() => {});
  try {
    cmd.parse([...argv], { from: "user" });
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === "commander.helpDisplayed" || e.code === "commander.help") return { kind: "help", text: out };
      throw new UsageError(`${e.message.replace(/^error: /, "").replace(/\s*\n\s*/g, " ").trim()} (see --help)`);
    }
    throw e;
  }
  const values = cmd.opts<Record<string, unknown>>();
  const flags = new Map<string, string | true>();
  for (const { flag, key } of options) {
    const v = values[key];
    if (typeof v === "string" || v === true) flags.set(flag, v);
  }
  const positionals = cmd.args.filter((a): a is string => typeof a === "string");
  return { kind: "args", flags, positionals };
}
