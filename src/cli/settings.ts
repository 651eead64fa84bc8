// One setting's text, looked up with the precedence users expect: flag > GOULETTE_* variable > config
// file > default. Each value keeps its origin so validation errors point at the right place.
import type { ConfigValues } from "./config-file";
import { envName } from "./args";
import { UsageError } from "./usage-error";

export type Env = Readonly<Record<string, string | undefined>>;

export interface Setting {
  text: string;
  origin: string;
}

export class Settings {
  constructor(
    private readonly flags: ReadonlyMap<string, string | true>,
    private readonly env: Env,
    private readonly file: ConfigValues = new Map(),
  ) {}

  get(flag: string): Setting | undefined {
    const fromFlag = this.flags.get(flag);
    if (typeof fromFlag === "string") return { text: fromFlag, origin: `--${flag}` };
    const name = envName(flag);
    const fromEnv = this.env[name];
    // An empty variable counts as unset: container tooling often exports every name, set or not.
    if (fromEnv !== undefined && fromEnv !== "") return { text: fromEnv, origin: name };
    return this.file.get(flag);
  }

  required(flag: string, why = ""): Setting {
    const s = this.get(flag);
    if (!s) {
      throw new UsageError(`missing required --${flag}${why} (or ${envName(flag)}, or ${flag} in the --config file)`);
    }
    return s;
  }
}
