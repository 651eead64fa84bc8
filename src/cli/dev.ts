// `goulette dev`: the embedded default. A sentinel and N brokers as child processes of this same
// executable, on loopback, data under one directory; prints where they listen and how to use them, and
// stops them all on Ctrl-C or SIGTERM. Children are real processes (not in-process servers) so that
// killing one behaves exactly like losing a machine.
import { mkdirSync } from "node:fs";
import { relative, resolve } from "node:path";
import type { Subprocess } from "bun";
import type { LogLevel } from "../log";
import { parseArgs, type CommandSpec } from "./args";
import type { Parsed } from "./config";
import { listeningEvent } from "./run-server";
import { Settings, type Env } from "./settings";
import { UsageError } from "./usage-error";
import { parseFsync, parseInteger, parseLogLevel, parseNonEmpty } from "./values";

const brokersMax = 32;
/** Tells a child it was started by dev: it then stops when its stdin (held open by dev) closes. */
export const devChildEnv = "GOULETTE_DEV_CHILD";
const listenTimeoutMs = 30_000;
const stopTimeoutMs = 10_000;

export interface DevOptions {
  brokers: number;
  port: number; // sentinel port; brokers take port+1..port+N, or all pick free ports when 0
  dataDir: string;
  fsync?: string; // passed to every child when given
  logLevel: LogLevel;
  format: "text" | "json";
}

export const devCommand: CommandSpec = {
  name: "dev",
  summary: "Run a sentinel and N brokers on loopback as child processes; Ctrl-C stops them all.",
  flags: [
    { flag: "brokers", value: "n", help: `number of brokers, 1-${brokersMax} (default 3)` },
    { flag: "port", value: "port", help: "sentinel port; brokers use the next N ports; 0 picks free ports (default 7070)" },
    { flag: "data-dir", value: "path", help: "data for every child, one folder each (default ./data)" },
    { flag: "fsync", value: "policy", help: "fsync policy for every child (default: theirs, always)" },
    { flag: "log-level", value: "level", help: "children's log level (default info)" },
    { flag: "format", value: "text|json", help: "text for people, json: one line with the addresses once all listen" },
  ],
  footer: "Example:\n  goulette dev --brokers 3 --port 7070 --data-dir ./data",
};

export function parseDevOptions(argv: readonly string[], env: Env): Parsed<DevOptions> {
  const parsed = parseArgs(devCommand, argv);
  if (parsed.kind === "help") return parsed;
  const s = new Settings(parsed.flags, env);
  const brokersSetting = s.get("brokers");
  const brokers = brokersSetting ? parseInteger(brokersSetting.text, brokersSetting.origin, 1, brokersMax) : 3;
  const portSetting = s.get("port");
  const port = portSetting ? parseInteger(portSetting.text, portSetting.origin, 0, 65535 - brokers) : 7070;
  const dataDirSetting = s.get("data-dir");
  const fsyncSetting = s.get("fsync");
  const logLevelSetting = s.get("log-level");
  const formatSetting = s.get("format");
  const format = formatSetting?.text ?? "text";
  if (format !== "text" && format !== "json") {
    throw new UsageError(`${formatSetting?.origin} "${format}": expected text or json`);
  }
  const options: DevOptions = {
    brokers,
    port,
    dataDir: dataDirSetting ? parseNonEmpty(dataDirSetting.text, dataDirSetting.origin) : "./data",
    logLevel: logLevelSetting ? parseLogLevel(logLevelSetting.text, logLevelSetting.origin) : "info",
    format,
  };
  if (fsyncSetting) options.fsync = parseFsync(fsyncSetting.text, fsyncSetting.origin);
  return { kind: "options", options };
}

/** How to start this program again: the compiled executable alone, or `bun <main.ts>` from source. */
export function selfCommand(): string[] {
  const compiled = Bun.main.startsWith("/$bunfs/") || /^[A-Z]:[\\/]~BUN[\\/]/.test(Bun.main);
  return compiled ? [process.execPath] : [process.execPath, Bun.main];
}

export interface DevHooks {
  stopRequested?: Promise<string>;
  out?: (text: string) => void; // the summary (stdout)
  err?: (line: string) => void; // children's log lines and our notices (stderr)
}

interface Child {
  name: string;
  proc: Subprocess<"pipe", "inherit", "pipe">;
  listening: Promise<string>;
}

export async function runDev(options: DevOptions, self: readonly string[], hooks: DevHooks = {}): Promise<number> {
  if (self.length === 0) throw new Error("runDev needs the command that starts this program");
  const out = hooks.out ?? ((t: string) => process.stdout.write(t));
  const err = hooks.err ?? ((l: string) => process.stderr.write(l + "\n"));
  const stopRequested = hooks.stopRequested ?? signalled();
  const dataDir = resolve(options.dataDir);
  mkdirSync(dataDir, { recursive: true });

  const children: Child[] = [];
  let ready: Awaited<ReturnType<typeof startup>> | undefined;
  let stopping = false;
  let alive = 0;
  let resolveAllDied: () => void = () => {};
  const allDied = new Promise<"all-died">((r) => (resolveAllDied = () => r("all-died")));

  const common = [...(options.fsync ? ["--fsync", options.fsync] : []), "--log-level", options.logLevel];
  const spawn = (name: string, args: string[]): Child => {
    // A signal during startup stops what exists; nothing may be started after that.
    if (stopping) throw new Error(`not starting ${name}: stopping`);
    const proc = Bun.spawn([...self, ...args, ...common], {
      env: { ...childEnv(), [devChildEnv]: "1" },
      stdin: "pipe", // never written; its end tells the child that dev is gone
      stdout: "inherit",
      stderr: "pipe",
    });
    alive++;
    const listening = forwardLog(proc.stderr, err);
    const child = { name, proc, listening };
    void proc.exited.then((code) => {
      alive--;
      // During startup untilListening reports a death itself, with more context.
      if (!stopping && ready !== undefined) {
        const how = proc.signalCode ? `was killed by ${proc.signalCode}` : `exited with code ${code}`;
        err(`goulette dev: ${name} (pid ${proc.pid}) ${how}${alive > 0 ? "; the others keep running" : ""}`);
      }
      if (alive === 0) resolveAllDied();
    });
    children.push(child);
    return child;
  };

  const stopAll = async () => {
    stopping = true;
    // Brokers first, so none of them is declared down and failed over while the cluster is going away.
    await stopEach(children.filter((c) => c.name !== "sentinel"));
    await stopEach(children.filter((c) => c.name === "sentinel"));
  };

  const startup = async (): Promise<{ sentinel: string; brokers: { id: number; address: string; pid: number }[] }> => {
    const sentinel = spawn("sentinel", [
      "sentinel",
      "--listen",
      `127.0.0.1:${options.port}`,
      "--data-dir",
      `${dataDir}/sentinel`,
    ]);
    const sentinelAddress = await untilListening(sentinel);
    const brokers = Array.from({ length: options.brokers }, (_, i) => {
      const id = i + 1;
      const port = options.port === 0 ? 0 : options.port + id;
      const child = spawn(`broker ${id}`, [
        "broker",
        "--id",
        String(id),
        "--listen",
        `127.0.0.1:${port}`,
        "--sentinel",
        sentinelAddress,
        "--data-dir",
        `${dataDir}/b${id}`,
      ]);
      return { id, child };
    });
    const addresses = await Promise.all(brokers.map((b) => untilListening(b.child)));
    return {
      sentinel: sentinelAddress,
      brokers: brokers.map((b, i) => ({ id: b.id, address: addresses[i] ?? "", pid: b.child.proc.pid })),
    };
  };

  const startupOrSignal = await Promise.race([
    startup().then((r) => ({ kind: "ready" as const, r }), (e: unknown) => ({ kind: "failed" as const, e })),
    stopRequested.then(() => ({ kind: "signal" as const })),
  ]);
  if (startupOrSignal.kind !== "ready") {
    if (startupOrSignal.kind === "failed") err(`goulette dev: ${errorText(startupOrSignal.e)}`);
    await stopAll();
    return startupOrSignal.kind === "signal" ? 0 : 1;
  }
  ready = startupOrSignal.r;

  if (options.format === "json") {
    out(JSON.stringify({ event: "ready", sentinel: ready.sentinel, brokers: ready.brokers, dataDir }) + "\n");
  } else {
    out(summary(ready, options, dataDir, displayName(self)));
  }

  const outcome = await Promise.race([stopRequested, allDied]);
  if (outcome === "all-died") {
    err("goulette dev: every child has exited; stopping");
    stopping = true;
    return 1;
  }
  err(`goulette dev: ${outcome}, stopping ${children.length} processes`);
  await stopAll();
  return 0;
}

async function untilListening(child: Child): Promise<string> {
  let timer: Timer | undefined;
  try {
    return await Promise.race([
      child.listening,
      child.proc.exited.then((code) => {
        throw new Error(`${child.name} exited with code ${code} before listening (its log is above)`);
      }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${child.name} did not report listening within ${listenTimeoutMs} ms`)),
          listenTimeoutMs,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function stopEach(children: Child[]): Promise<void> {
  const running = children.filter((c) => c.proc.exitCode === null && c.proc.signalCode === null);
  for (const c of running) c.proc.kill("SIGTERM");
  let timer: Timer | undefined;
  const deadline = new Promise<"late">((r) => (timer = setTimeout(() => r("late"), stopTimeoutMs)));
  const result = await Promise.race([Promise.all(running.map((c) => c.proc.exited)), deadline]);
  clearTimeout(timer);
  if (result === "late") {
    for (const c of running) if (c.proc.exitCode === null) c.proc.kill("SIGKILL");
    await Promise.all(running.map((c) => c.proc.exited));
  }
}

/** Copies a child's stderr to ours line by line; resolves with the address of its "listening" event. */
function forwardLog(stream: ReadableStream<Uint8Array>, err: (line: string) => void): Promise<string> {
  return new Promise<string>((resolveAddress) => {
    void (async () => {
      const decoder = new TextDecoder();
      let pending = "";
      const onLine = (line: string) => {
        err(line);
        const address = listeningAddress(line);
        if (address) resolveAddress(address);
      };
      for await (const chunk of stream) {
        pending += decoder.decode(chunk, { stream: true });
        let newline = pending.indexOf("\n");
        while (newline >= 0) {
          onLine(pending.slice(0, newline));
          pending = pending.slice(newline + 1);
          newline = pending.indexOf("\n");
        }
      }
      if (pending !== "") onLine(pending);
    })();
  });
}

export function listeningAddress(line: string): string | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const o: unknown = JSON.parse(line);
    if (typeof o === "object" && o !== null && "event" in o && o.event === listeningEvent && "address" in o) {
      return typeof o.address === "string" ? o.address : undefined;
    }
  } catch {
    // Not a log line of ours; it is still forwarded.
  }
  return undefined;
}

/** Children get only the settings we pass: a stray GOULETTE_ID or GOULETTE_PEERS must not leak into them. */
function childEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("GOULETTE_")) env[k] = v;
  return env;
}

function displayName(self: readonly string[]): string {
  const shown = (p: string) => {
    const r = relative(process.cwd(), p);
    return r.startsWith("..") ? p : r.includes("/") ? r : `./${r}`;
  };
  return self.length === 1 ? shown(self[0] ?? "goulette") : `bun ${shown(self[self.length - 1] ?? "src/main.ts")}`;
}

function summary(
  ready: { sentinel: string; brokers: { id: number; address: string; pid: number }[] },
  options: DevOptions,
  dataDir: string,
  cmd: string,
): string {
  // Client commands default to 127.0.0.1:7070, so the flag is only worth printing for other addresses.
  const s = ready.sentinel === "127.0.0.1:7070" ? "" : ` --sentinel ${ready.sentinel}`;
  const rows = [
    `  sentinel   ${ready.sentinel}`,
    ...ready.brokers.map((b) => `  broker ${String(b.id).padEnd(3)} ${b.address}`),
  ];
  const replicas = Math.min(3, options.brokers);
  return [
    `goulette dev: 1 sentinel and ${options.brokers} broker${options.brokers === 1 ? "" : "s"} listening, data in ${dataDir}`,
    ...rows,
    "",
    "Try, in another terminal:",
    `  ${cmd} topic create demo --partitions 3 --replicas ${replicas}${s}`,
    `  echo hello | ${cmd} produce demo --key k1${s}`,
    `  ${cmd} consume demo --from-beginning${s}`,
    `  ${cmd} cluster status${s}`,
    "",
    "Ctrl-C stops them all.",
    "",
  ].join("\n");
}

function signalled(): Promise<string> {
  return new Promise((resolveSignal) => {
    const on = (signal: NodeJS.Signals) => resolveSignal(signal);
    process.once("SIGTERM", on);
    process.once("SIGINT", on);
  });
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
