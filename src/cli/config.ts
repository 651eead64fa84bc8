// Builds the exact option objects the modes start from (BrokerOptions, SentinelOptions) out of flags,
// GOULETTE_* variables and the config file, validating every value with a one-line error.
import { brokerDefaults, type BrokerOptions } from "../broker/options";
import { sentinelDefaults, type SentinelOptions } from "../sentinel/options";
import { parseArgs, type CommandSpec, type FlagSpec } from "./args";
import { readConfigFile, type ConfigValues } from "./config-file";
import { Settings, type Env, type Setting } from "./settings";
import { UsageError } from "./usage-error";
import { parseAddress, parseAddressList, parseFsync, parseInteger, parseLogLevel, parseNonEmpty } from "./values";

const idMax = 2 ** 31 - 1;
const peersMax = 9;
const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

const shared = {
  fsync: { flag: "fsync", value: "policy", help: "always | interval:<ms> | never (default always)" },
  logLevel: { flag: "log-level", value: "level", help: "debug | info | warn | error (default info)" },
  maxFrameBytes: { flag: "max-frame-bytes", value: "n", help: "largest frame accepted (default 16 MiB)" },
  advertise: { flag: "advertise", value: "host:port", help: "address others dial (default: the bound address)" },
  config: { flag: "config", value: "file", help: "TOML file with any of these settings (keys = flag names)" },
} satisfies Record<string, FlagSpec>;

export const brokerCommand: CommandSpec = {
  name: "broker",
  summary: "Run a broker: hosts partitions, one Raft group each.",
  flags: [
    { flag: "id", value: "n", help: "broker id, unique in the cluster (required)" },
    { flag: "listen", value: "host:port", help: "address to bind; port 0 picks one (required)" },
    shared.advertise,
    { flag: "sentinel", value: "host:port,...", help: "sentinel address(es), comma-separated (required)" },
    { flag: "data-dir", value: "path", help: "WAL and partition data (default ./data/b<id>)" },
    shared.fsync,
    { flag: "tick-ms", value: "ms", help: `Raft tick (default ${brokerDefaults.tickMs})` },
    { flag: "election-ticks", value: "n", help: `election timeout in ticks, randomized up to 2x (default ${brokerDefaults.electionTicks})` },
    { flag: "heartbeat-ticks", value: "n", help: `leader heartbeat in ticks (default ${brokerDefaults.heartbeatTicks})` },
    { flag: "segment-bytes", value: "n", help: "partition segment size (default 64 MiB)" },
    { flag: "compact-lag-entries", value: "n", help: "a follower this far behind gets fragments, not entries (default 10000)" },
    { flag: "checkpoint-interval-ms", value: "ms", help: "how often partition logs are synced and the WAL trimmed (default 1000)" },
    { flag: "scrub-bytes-per-s", value: "n", help: "stored data read back and verified per second, to find and repair damage; 0 off (default 4 MiB)" },
    shared.maxFrameBytes,
    shared.logLevel,
    shared.config,
  ],
  footer: "Example:\n  goulette broker --id 1 --listen 127.0.0.1:7081 --sentinel 127.0.0.1:7070 --data-dir ./data/b1",
};

export const sentinelCommand: CommandSpec = {
  name: "sentinel",
  summary: "Run a sentinel: keeps the cluster map (brokers, placement, leaders).",
  flags: [
    { flag: "listen", value: "host:port", help: "address to bind; port 0 picks one (default 127.0.0.1:7070)" },
    shared.advertise,
    { flag: "data-dir", value: "path", help: "cluster map data (default ./data/sentinel)" },
    { flag: "peers", value: "host:port,...", help: "all sentinels, this one included, when several replicate the map" },
    { flag: "id", value: "n", help: "1-based position of this sentinel in --peers (required with --peers)" },
    shared.fsync,
    { flag: "keep-alive-ms", value: "ms", help: `heartbeat interval brokers are told (default ${sentinelDefaults.keepAliveMs})` },
    { flag: "suspicious-after-ms", value: "ms", help: `silence before a broker is suspicious (default ${sentinelDefaults.suspiciousAfterMs})` },
    { flag: "down-after-ms", value: "ms", help: `silence before a broker is down and failover starts (default ${sentinelDefaults.downAfterMs})` },
    { flag: "virtual-nodes", value: "n", help: `hash-ring points per broker (default ${sentinelDefaults.virtualNodes})` },
    {
      flag: "balance-after-ms",
      value: "ms",
      help: `move replicas back to their ring placement once its brokers have been healthy this long; 0: never (default ${sentinelDefaults.balanceAfterMs})`,
    },
    shared.maxFrameBytes,
    shared.logLevel,
    shared.config,
  ],
  footer:
    "Examples:\n  goulette sentinel --listen 127.0.0.1:7070 --data-dir ./data/sentinel\n" +
    "  goulette sentinel --listen 127.0.0.1:7070 --peers 127.0.0.1:7070,127.0.0.1:7170,127.0.0.1:7270 --id 1",
};

export type Parsed<T> = { kind: "help"; text: string } | { kind: "options"; options: T };

export function parseBrokerOptions(argv: readonly string[], env: Env): Parsed<BrokerOptions> {
  const s = settingsFor(brokerCommand, argv, env);
  if (s.kind === "help") return s;
  const { settings } = s;
  const int = intReader(settings);
  const id = parseInteger(settings.required("id").text, settings.required("id").origin, 1, idMax);
  const electionTicks = int("election-ticks", brokerDefaults.electionTicks, 2, 1000);
  const heartbeatTicks = int("heartbeat-ticks", brokerDefaults.heartbeatTicks, 1, 1000);
  if (heartbeatTicks >= electionTicks) {
    throw new UsageError(`--heartbeat-ticks ${heartbeatTicks} must be below --election-ticks ${electionTicks}`);
  }
  const listen = settings.required("listen");
  const sentinel = settings.required("sentinel");
  const options: BrokerOptions = {
    id,
    listen: parseAddress(listen.text, listen.origin, true),
    advertise: optionalAddress(settings.get("advertise")),
    sentinels: parseAddressList(sentinel.text, sentinel.origin),
    dataDir: text(settings.get("data-dir")) ?? `./data/b${id}`,
    fsync: fsync(settings.get("fsync"), brokerDefaults.fsync),
    tickMs: int("tick-ms", brokerDefaults.tickMs, 1, 10_000),
    electionTicks,
    heartbeatTicks,
    segmentBytes: int("segment-bytes", brokerDefaults.segmentBytes, 64 * KiB, 4 * GiB),
    maxFrameBytes: int("max-frame-bytes", brokerDefaults.maxFrameBytes, 64 * KiB, GiB),
    logLevel: logLevel(settings.get("log-level"), brokerDefaults.logLevel),
  };
  if (options.advertise === undefined) delete options.advertise;
  // Optional fields stay absent unless set, so the broker's own defaults apply.
  const compactLag = settings.get("compact-lag-entries");
  if (compactLag) options.compactLagEntries = parseInteger(compactLag.text, compactLag.origin, 1, 100_000_000);
  const checkpoint = settings.get("checkpoint-interval-ms");
  if (checkpoint) options.checkpointIntervalMs = parseInteger(checkpoint.text, checkpoint.origin, 1, 3_600_000);
  const scrub = settings.get("scrub-bytes-per-s");
  if (scrub) options.scrubBytesPerS = parseInteger(scrub.text, scrub.origin, 0, 10 * GiB);
  return { kind: "options", options };
}

export function parseSentinelOptions(argv: readonly string[], env: Env): Parsed<SentinelOptions> {
  const s = settingsFor(sentinelCommand, argv, env);
  if (s.kind === "help") return s;
  const { settings } = s;
  const int = intReader(settings);
  const listenSetting = settings.get("listen");
  const listen = listenSetting ? parseAddress(listenSetting.text, listenSetting.origin, true) : "127.0.0.1:7070";
  const peersSetting = settings.get("peers");
  const peers = peersSetting ? parseAddressList(peersSetting.text, peersSetting.origin) : sentinelDefaults.peers;
  if (peers.length > peersMax) throw new UsageError(`${peersSetting?.origin} lists ${peers.length} sentinels; at most ${peersMax}`);
  let id = sentinelDefaults.id;
  if (peers.length > 0) {
    const idSetting = settings.required("id", " with --peers");
    id = parseInteger(idSetting.text, idSetting.origin, 1, peers.length);
  } else {
    const idSetting = settings.get("id");
    if (idSetting) id = parseInteger(idSetting.text, idSetting.origin, 1, 1);
  }
  const keepAliveMs = int("keep-alive-ms", sentinelDefaults.keepAliveMs, 10, 60_000);
  const suspiciousAfterMs = int("suspicious-after-ms", sentinelDefaults.suspiciousAfterMs, 10, 600_000);
  const downAfterMs = int("down-after-ms", sentinelDefaults.downAfterMs, 10, 600_000);
  if (!(keepAliveMs < suspiciousAfterMs && suspiciousAfterMs < downAfterMs)) {
    throw new UsageError(
      `need --keep-alive-ms ${keepAliveMs} < --suspicious-after-ms ${suspiciousAfterMs} < --down-after-ms ${downAfterMs}`,
    );
  }
  const options: SentinelOptions = {
    listen,
    advertise: optionalAddress(settings.get("advertise")),
    dataDir: text(settings.get("data-dir")) ?? "./data/sentinel",
    peers,
    id,
    fsync: fsync(settings.get("fsync"), sentinelDefaults.fsync),
    keepAliveMs,
    suspiciousAfterMs,
    downAfterMs,
    virtualNodes: int("virtual-nodes", sentinelDefaults.virtualNodes, 1, 4096),
    balanceAfterMs: int("balance-after-ms", sentinelDefaults.balanceAfterMs, 0, 86_400_000),
    maxFrameBytes: int("max-frame-bytes", sentinelDefaults.maxFrameBytes, 64 * KiB, GiB),
    logLevel: logLevel(settings.get("log-level"), sentinelDefaults.logLevel),
  };
  if (options.advertise === undefined) delete options.advertise;
  return { kind: "options", options };
}

const modeCommands = [brokerCommand, sentinelCommand];

function settingsFor(
  spec: CommandSpec,
  argv: readonly string[],
  env: Env,
): { kind: "help"; text: string } | { kind: "settings"; settings: Settings } {
  const parsed = parseArgs(spec, argv);
  if (parsed.kind === "help") return parsed;
  const configPath = new Settings(parsed.flags, env).get("config");
  let file: ConfigValues = new Map();
  if (configPath) {
    const flags = new Set(spec.flags.map((f) => f.flag));
    const aliases = configAliases(spec);
    const others = new Set(
      modeCommands.filter((c) => c !== spec).flatMap((c) => [...c.flags.map((f) => f.flag), ...configAliases(c).keys()]),
    );
    file = readConfigFile(parseNonEmpty(configPath.text, configPath.origin), {
      mode: spec.name,
      flags,
      aliases,
      otherModesKeys: others,
      sections: new Set(modeCommands.map((c) => c.name)),
    });
  }
  return { kind: "settings", settings: new Settings(parsed.flags, env, file) };
}

/** Config-file spellings besides the flag names: the option names (dataDir), and `sentinels` for the list. */
function configAliases(spec: CommandSpec): Map<string, string> {
  const aliases = new Map(spec.flags.map((f) => [kebabToCamel(f.flag), f.flag]));
  if (spec === brokerCommand) aliases.set("sentinels", "sentinel");
  return aliases;
}

function intReader(settings: Settings) {
  return (flag: string, fallback: number, min: number, max: number): number => {
    const s = settings.get(flag);
    return s ? parseInteger(s.text, s.origin, min, max) : fallback;
  };
}

function optionalAddress(s: Setting | undefined): string | undefined {
  return s ? parseAddress(s.text, s.origin, false) : undefined;
}

function text(s: Setting | undefined): string | undefined {
  return s ? parseNonEmpty(s.text, s.origin) : undefined;
}

function fsync(s: Setting | undefined, fallback: string): string {
  return s ? parseFsync(s.text, s.origin) : fallback;
}

function logLevel(s: Setting | undefined, fallback: BrokerOptions["logLevel"]): BrokerOptions["logLevel"] {
  return s ? parseLogLevel(s.text, s.origin) : fallback;
}

function kebabToCamel(s: string): string {
  return s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}
