// The goulette executable: picks the command (or the mode named by GOULETTE_MODE) and hands it argv.
// Exit codes: 0 success, 1 failure at runtime, 2 usage error (bad flag or value), each error one line on stderr.
import { parseBrokerOptions, parseSentinelOptions } from "./cli/config";
import { reexecWithAllocatorSettings } from "./cli/allocator";
import { devChildEnv, parseDevOptions, runDev, selfCommand } from "./cli/dev";
import { runServer, type RunServerHooks, type StartServer } from "./cli/run-server";
import type { Env } from "./cli/settings";
import { exitUsage, UsageError } from "./cli/usage-error";
import { runVersion } from "./cli/version";
import type { BrokerOptions } from "./broker/options";
import type { SentinelOptions } from "./sentinel/options";

/** Commands implemented in src/cli/commands/<name>.ts, each exporting `run(args, env): Promise<number>`. */
export const clientCommands = ["topic", "produce", "consume", "cluster", "bench"] as const;
const serverModes = ["sentinel", "broker", "dev"] as const;
const commands: readonly string[] = [...serverModes, ...clientCommands, "version"];

export interface CommandModule {
  run(args: string[], env: Env): Promise<number>;
}

const topHelp = `goulette - a replicated message queue in one binary

Usage: goulette <command> [options]
       GOULETTE_MODE=<sentinel|broker|dev> goulette [options]

Servers:
  sentinel   run a sentinel: the cluster map (brokers, placement, leaders)
  broker     run a broker: partitions, one Raft group each
  dev        a sentinel and N brokers on loopback as child processes
Clients:
  topic      create NAME | alter NAME | list | describe NAME | delete NAME
  produce    TOPIC: one message per stdin line
  consume    TOPIC: print messages
  cluster    status: brokers, health, partition leaders
  bench      produce benchmark, one JSON line
Other:
  version    version, Bun version, git commit

Every command takes --help. Every flag has a GOULETTE_* twin (--data-dir / GOULETTE_DATA_DIR);
precedence is flags > environment > --config file.
`;

export async function main(argv: readonly string[], env: Env): Promise<number> {
  const first = argv[0];
  let command: string;
  let rest: string[];
  if (first !== undefined && commands.includes(first)) {
    command = first;
    rest = argv.slice(1);
  } else if (env.GOULETTE_MODE !== undefined && env.GOULETTE_MODE !== "") {
    // The mode's own flags (and its --help) take the whole argv, as in a container with the mode preset.
    command = env.GOULETTE_MODE;
    rest = [...argv];
    if (!(serverModes as readonly string[]).includes(command)) {
      return usageError("goulette", `GOULETTE_MODE "${command}": expected ${serverModes.join(", ")}`);
    }
  } else if (first === "help" || first === "--help" || first === "-h") {
    process.stdout.write(topHelp);
    return 0;
  } else if (first === "--version" || first === "-v") {
    command = "version";
    rest = argv.slice(1);
  } else if (first === undefined) {
    process.stderr.write(topHelp);
    return exitUsage;
  } else {
    return usageError("goulette", `unknown command "${first}" (see goulette --help)`);
  }

  try {
    return await dispatch(command, rest, env);
  } catch (e) {
    if (e instanceof UsageError) return usageError(`goulette ${command}`, e.message);
    process.stderr.write(`goulette ${command}: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}

async function dispatch(command: string, args: string[], env: Env): Promise<number> {
  switch (command) {
    case "version":
      return runVersion(args, env, (s) => process.stdout.write(s));
    case "broker": {
      const parsed = parseBrokerOptions(args, env);
      if (parsed.kind === "help") return help(parsed.text);
      const { startBroker } = await loadModule<{ startBroker: StartServer<BrokerOptions> }>("broker/index", "startBroker");
      return runServer("broker", parsed.options, startBroker, { id: parsed.options.id }, serverHooks(env));
    }
    case "sentinel": {
      const parsed = parseSentinelOptions(args, env);
      if (parsed.kind === "help") return help(parsed.text);
      const { startSentinel } = await loadModule<{ startSentinel: StartServer<SentinelOptions> }>(
        "sentinel/index",
        "startSentinel",
      );
      return runServer("sentinel", parsed.options, startSentinel, { id: parsed.options.id }, serverHooks(env));
    }
    case "dev": {
      const parsed = parseDevOptions(args, env);
      if (parsed.kind === "help") return help(parsed.text);
      return runDev(parsed.options, selfCommand());
    }
    default: {
      if (!(clientCommands as readonly string[]).includes(command)) throw new Error(`no handler for "${command}"`);
      const mod = await loadModule<CommandModule>(`cli/commands/${command}`, "run");
      const code = await mod.run(args, env);
      if (!Number.isInteger(code) || code < 0 || code > 255) throw new Error(`exited with invalid status ${code}`);
      return code;
    }
  }
}

// loadModule is untyped at runtime; these lines make tsc hold each loaded module to the shape used here.
type Exports<M, K extends string, F> = M extends Record<K, F> ? true : never;
true satisfies Exports<typeof import("./broker/index"), "startBroker", StartServer<BrokerOptions>>;
true satisfies Exports<typeof import("./sentinel/index"), "startSentinel", StartServer<SentinelOptions>>;
true satisfies Exports<typeof import("./cli/commands/topic"), "run", CommandModule["run"]>;
true satisfies Exports<typeof import("./cli/commands/produce"), "run", CommandModule["run"]>;
true satisfies Exports<typeof import("./cli/commands/consume"), "run", CommandModule["run"]>;
true satisfies Exports<typeof import("./cli/commands/cluster"), "run", CommandModule["run"]>;
true satisfies Exports<typeof import("./cli/commands/bench"), "run", CommandModule["run"]>;

/** GOULETTE_DEV_CHILD is set by `goulette dev` only; it is not a setting, so it has no flag. */
function serverHooks(env: Env): RunServerHooks {
  return { stopWhenStdinCloses: env[devChildEnv] === "1" };
}

/**
 * Loads a module by a path relative to this file. The path is built at runtime, so a part that is not
 * written yet costs a clear error instead of a failed build; build.ts embeds each of these files as an
 * extra entrypoint so the compiled executable resolves the same relative paths. This must stay in
 * src/main.ts: the compiled bundle resolves relative imports from the entrypoint's place in src/.
 */
async function loadModule<M>(path: string, exportName: string): Promise<M> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(`./${path}.ts`)) as Record<string, unknown>;
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    if (/Cannot find module/i.test(message) && message.includes(path)) throw new Error(`not available in this build (src/${path}.ts)`);
    throw e;
  }
  if (typeof mod[exportName] !== "function") throw new Error(`src/${path}.ts does not export ${exportName}()`);
  return mod as M;
}

function help(text: string): number {
  process.stdout.write(text);
  return 0;
}

function usageError(prefix: string, message: string): number {
  process.stderr.write(`${prefix}: ${message}\n`);
  return exitUsage;
}

/** The servers and the benchmark allocate batch-sized buffers all the time (see cli/allocator.ts). */
export function wantsAllocatorSettings(argv: readonly string[], env: Env): boolean {
  const first = argv[0];
  if (first !== undefined && commands.includes(first)) return (serverModes as readonly string[]).includes(first) || first === "bench";
  return env.GOULETTE_MODE !== undefined && env.GOULETTE_MODE !== "";
}

if (import.meta.main) {
  if (wantsAllocatorSettings(process.argv.slice(2), process.env)) reexecWithAllocatorSettings(selfCommand(), process.argv.slice(2), process.env);
  const code = await main(process.argv.slice(2), process.env);
  // Let stdout drain into a pipe before exiting; process.exit would otherwise cut it short.
  await new Promise<void>((resolve) => process.stdout.write("", () => resolve()));
  process.exit(code);
}
