import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { brokerDefaults, type BrokerOptions } from "../../src/broker/options";
import { sentinelDefaults, type SentinelOptions } from "../../src/sentinel/options";
import { parseBrokerOptions, parseSentinelOptions } from "../../src/cli/config";
import { UsageError } from "../../src/cli/usage-error";

const dir = mkdtempSync(join(tmpdir(), "goulette-cli-config-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
function toml(text: string): string {
  const path = join(dir, `c${files++}.toml`);
  writeFileSync(path, text);
  return path;
}

const required = ["--id", "1", "--listen", "127.0.0.1:0", "--sentinel", "127.0.0.1:7070"];

function broker(argv: string[], env: Record<string, string> = {}): BrokerOptions {
  const r = parseBrokerOptions(argv, env);
  if (r.kind !== "options") throw new Error("expected options, got help");
  return r.options;
}
function sentinel(argv: string[], env: Record<string, string> = {}): SentinelOptions {
  const r = parseSentinelOptions(argv, env);
  if (r.kind !== "options") throw new Error("expected options, got help");
  return r.options;
}
function usageMessage(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    const message = (e as Error).message;
    expect(message).not.toContain("\n");
    return message;
  }
  throw new Error("expected a UsageError");
}

describe("broker options", () => {
  test("required flags alone give exactly BrokerOptions with the agreed defaults", () => {
    expect(broker(required)).toEqual({
      ...brokerDefaults,
      id: 1,
      listen: "127.0.0.1:0",
      sentinels: ["127.0.0.1:7070"],
      dataDir: "./data/b1",
    });
  });

  test("every flag maps onto its field", () => {
    const o = broker([
      ...required,
      "--advertise", "10.0.0.5:7081",
      "--sentinel", "127.0.0.1:7070,127.0.0.1:7170",
      "--data-dir", "/var/lib/g",
      "--fsync", "interval:5",
      "--tick-ms", "20",
      "--election-ticks", "12",
      "--heartbeat-ticks", "2",
      "--segment-bytes", "1048576",
      "--compact-lag-entries", "500",
      "--checkpoint-interval-ms", "250",
      "--scrub-bytes-per-s", "0",
      "--max-frame-bytes", "65536",
      "--log-level", "debug",
    ]);
    expect(o).toEqual({
      id: 1,
      listen: "127.0.0.1:0",
      advertise: "10.0.0.5:7081",
      sentinels: ["127.0.0.1:7070", "127.0.0.1:7170"],
      dataDir: "/var/lib/g",
      fsync: "interval:5",
      tickMs: 20,
      electionTicks: 12,
      heartbeatTicks: 2,
      segmentBytes: 1048576,
      compactLagEntries: 500,
      checkpointIntervalMs: 250,
      scrubBytesPerS: 0,
      maxFrameBytes: 65536,
      logLevel: "debug",
    });
  });

  test("precedence: flag > GOULETTE_* env > config file > default", () => {
    const file = toml(`id = 9\nlisten = "127.0.0.1:9001"\nsentinel = ["127.0.0.1:9000"]\nfsync = "never"\nlog-level = "warn"\ntickMs = 30\n`);
    const env = { GOULETTE_LISTEN: "127.0.0.1:8001", GOULETTE_FSYNC: "interval:50", GOULETTE_CONFIG: file };
    const o = broker(["--fsync", "always"], env);
    expect(o.id).toBe(9); // file only
    expect(o.listen).toBe("127.0.0.1:8001"); // env beats file
    expect(o.fsync).toBe("always"); // flag beats env and file
    expect(o.logLevel).toBe("warn"); // file beats default
    expect(o.tickMs).toBe(30); // option-name spelling works in the file
    expect(o.sentinels).toEqual(["127.0.0.1:9000"]); // TOML arrays are lists
    expect(o.electionTicks).toBe(brokerDefaults.electionTicks);
    expect(o.dataDir).toBe("./data/b9");
  });

  test("--config flag beats GOULETTE_CONFIG, and a [broker] table beats the top level", () => {
    const ignored = toml(`id = 1\n`);
    const file = toml(`id = 2\nlisten = "127.0.0.1:1"\nsentinels = "127.0.0.1:7070"\npeers = "x:1"\n[broker]\nid = 3\n[sentinel]\nid = 4\n`);
    const o = broker(["--config", file], { GOULETTE_CONFIG: ignored });
    expect(o.id).toBe(3);
  });

  test("an empty GOULETTE_* variable counts as unset", () => {
    expect(broker(required, { GOULETTE_ADVERTISE: "" }).advertise).toBeUndefined();
  });

  test("bad port", () => {
    expect(usageMessage(() => broker([...required, "--listen", "127.0.0.1:70000"]))).toBe(
      `--listen "127.0.0.1:70000": port must be an integer 0-65535`,
    );
    expect(usageMessage(() => broker(["--id", "1", "--sentinel", "a:1"], { GOULETTE_LISTEN: "localhost:http" }))).toBe(
      `GOULETTE_LISTEN "localhost:http": port must be an integer 0-65535`,
    );
    expect(usageMessage(() => broker([...required, "--sentinel", "127.0.0.1:0"]))).toBe(
      `--sentinel "127.0.0.1:0": port must be an integer 1-65535`,
    );
    expect(usageMessage(() => broker([...required, "--listen", "7081"]))).toBe(
      `--listen "7081": expected host:port, e.g. 127.0.0.1:7070`,
    );
  });

  test("unknown flag", () => {
    expect(usageMessage(() => broker([...required, "--bogus"]))).toBe(`unknown option '--bogus' (see --help)`);
    expect(usageMessage(() => broker([...required, "--fsnyc", "always"]))).toContain(`unknown option '--fsnyc'`);
  });

  test("missing required value", () => {
    expect(usageMessage(() => broker(["--listen", "127.0.0.1:0", "--sentinel", "a:1"]))).toBe(
      "missing required --id (or GOULETTE_ID, or id in the --config file)",
    );
    expect(usageMessage(() => broker(["--id", "1", "--listen", "127.0.0.1:0"]))).toBe(
      "missing required --sentinel (or GOULETTE_SENTINEL, or sentinel in the --config file)",
    );
    expect(usageMessage(() => broker([...required, "--listen"]))).toBe(
      `option '--listen <host:port>' argument missing (see --help)`,
    );
  });

  test("bad fsync policy", () => {
    for (const bad of ["sometimes", "interval:", "interval:0", "interval:99999999"]) {
      expect(usageMessage(() => broker([...required, "--fsync", bad]))).toBe(
        `--fsync "${bad}": fsync policy must be always, never or interval:<ms> (ms 1-60000)`,
      );
    }
  });

  test("non-numeric id", () => {
    for (const bad of ["one", "1.5", "0", "-3", "1e3"]) {
      expect(usageMessage(() => broker(["--listen", "127.0.0.1:0", "--sentinel", "a:1", "--id", bad]))).toBe(
        `--id "${bad}": expected an integer 1-2147483647`,
      );
    }
    expect(usageMessage(() => broker(["--listen", "127.0.0.1:0", "--sentinel", "a:1"], { GOULETTE_ID: "b1" }))).toBe(
      `GOULETTE_ID "b1": expected an integer 1-2147483647`,
    );
  });

  test("other validation: log level, tick relations, extra words", () => {
    expect(usageMessage(() => broker([...required, "--log-level", "loud"]))).toBe(
      `--log-level "loud": log level must be one of debug, info, warn, error`,
    );
    expect(usageMessage(() => broker([...required, "--election-ticks", "10", "--heartbeat-ticks", "10"]))).toBe(
      "--heartbeat-ticks 10 must be below --election-ticks 10",
    );
    expect(usageMessage(() => broker([...required, "extra"]))).toContain("too many arguments");
  });

  test("config file errors name the file and key", () => {
    const typo = toml(`id = 1\nlistn = "127.0.0.1:0"\n`);
    expect(usageMessage(() => broker(["--config", typo]))).toBe(`${typo}: unknown key "listn" for goulette broker`);
    const bad = toml(`id = \n`);
    expect(usageMessage(() => broker(["--config", bad]))).toStartWith(`--config "${bad}": not valid TOML: `);
    const missing = join(dir, "nope.toml");
    expect(usageMessage(() => broker(["--config", missing]))).toStartWith(`--config "${missing}": cannot read: `);
    const port = toml(`id = 1\nsentinel = "a:1"\n[broker]\nlisten = "h:65536"\n`);
    expect(usageMessage(() => broker(["--config", port]))).toBe(
      `${port}: broker.listen "h:65536": port must be an integer 0-65535`,
    );
  });

  test("--help returns the help text, naming each flag's env twin", () => {
    const r = parseBrokerOptions(["--help"], {});
    if (r.kind !== "help") throw new Error("expected help");
    for (const f of ["--id", "--listen", "--sentinel", "--data-dir", "--fsync", "--log-level", "--config"]) {
      expect(r.text).toContain(f);
    }
    expect(r.text.replace(/\s+/g, " ")).toContain("GOULETTE_DATA_DIR");
  });
});

describe("sentinel options", () => {
  test("no flags: the embedded single sentinel on 7070", () => {
    expect(sentinel([])).toEqual({ ...sentinelDefaults, listen: "127.0.0.1:7070", dataDir: "./data/sentinel" });
  });

  test("peers are a comma-separated list and --id picks this one's position", () => {
    const o = sentinel(["--peers", "127.0.0.1:7070, 127.0.0.1:7170,127.0.0.1:7270", "--id", "2", "--listen", "127.0.0.1:7170"]);
    expect(o.peers).toEqual(["127.0.0.1:7070", "127.0.0.1:7170", "127.0.0.1:7270"]);
    expect(o.id).toBe(2);
  });

  test("peers need an id within the list", () => {
    expect(usageMessage(() => sentinel(["--peers", "a:1,b:2,c:3"]))).toBe(
      "missing required --id with --peers (or GOULETTE_ID, or id in the --config file)",
    );
    expect(usageMessage(() => sentinel(["--peers", "a:1,b:2,c:3", "--id", "4"]))).toBe(`--id "4": expected an integer 1-3`);
    expect(usageMessage(() => sentinel(["--peers", "a:1,a:1"], { GOULETTE_ID: "1" }))).toBe(
      `--peers "a:1,a:1": lists an address twice`,
    );
  });

  test("env and config file feed the sentinel too", () => {
    const file = toml(`data-dir = "/srv/s"\nid = 7\nsentinels = "ignored:1"\n[sentinel]\ndownAfterMs = 5000\n`);
    const o = sentinel(["--config", file, "--keep-alive-ms", "100"], { GOULETTE_PEERS: "a:1,b:2" , GOULETTE_ID: "2" });
    expect(o.dataDir).toBe("/srv/s");
    expect(o.downAfterMs).toBe(5000);
    expect(o.keepAliveMs).toBe(100);
    expect(o.id).toBe(2); // env beats the file's 7
    expect(o.peers).toEqual(["a:1", "b:2"]);
  });

  test("health timings must be ordered", () => {
    expect(usageMessage(() => sentinel(["--down-after-ms", "500"]))).toBe(
      "need --keep-alive-ms 200 < --suspicious-after-ms 600 < --down-after-ms 500",
    );
  });
});
