// The executable as a user runs it from source: `bun src/main.ts ...`.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { version as packageVersion } from "../../package.json";


// Each test spawns real processes; on a busy 2-core machine a spawn can take most of a second.
setDefaultTimeout(20_000);
const root = join(import.meta.dir, "../..");
const main = join(root, "src/main.ts");

function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("GOULETTE_")) env[k] = v;
  return { ...env, ...extra };
}

function run(args: string[], env: Record<string, string> = {}) {
  const r = Bun.spawnSync([process.execPath, main, ...args], { cwd: root, env: cleanEnv(env), stdin: "ignore", timeout: 20_000 });
  return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
}

/** A usage error: exit 2, nothing on stdout, exactly one line on stderr. */
function expectUsageError(r: ReturnType<typeof run>, line: string | RegExp) {
  expect(r.code).toBe(2);
  expect(r.out).toBe("");
  expect(r.err.endsWith("\n")).toBe(true);
  expect(r.err.trimEnd().split("\n")).toHaveLength(1);
  if (typeof line === "string") expect(r.err.trimEnd()).toBe(line);
  else expect(r.err.trimEnd()).toMatch(line);
}

describe("version", () => {
  test("text: version, Bun version and commit (unknown when run from source)", () => {
    const r = run(["version"]);
    expect(r.code).toBe(0);
    expect(r.out).toBe(`goulette ${packageVersion}\nbun      ${Bun.version}\ncommit   unknown\n`);
  });

  test("--format json prints one object, and GOULETTE_FORMAT is its twin", () => {
    for (const r of [run(["version", "--format", "json"]), run(["version"], { GOULETTE_FORMAT: "json" })]) {
      expect(r.code).toBe(0);
      expect(r.out.trimEnd().split("\n")).toHaveLength(1);
      expect(JSON.parse(r.out)).toEqual({ version: packageVersion, bun: Bun.version, commit: "unknown" });
    }
  });

  test("a bad --format is a usage error", () => {
    expectUsageError(run(["version", "--format", "xml"]), `goulette version: --format "xml": expected text or json`);
  });
});

describe("command and mode selection", () => {
  test("GOULETTE_MODE stands in for the first word", () => {
    expectUsageError(
      run(["--id", "x", "--listen", "127.0.0.1:0", "--sentinel", "127.0.0.1:7070"], { GOULETTE_MODE: "broker" }),
      `goulette broker: --id "x": expected an integer 1-2147483647`,
    );
    const help = run(["--help"], { GOULETTE_MODE: "sentinel" });
    expect(help.code).toBe(0);
    expect(help.out).toStartWith("Usage: goulette sentinel [options]");
  });

  test("an explicit command wins over GOULETTE_MODE", () => {
    const r = run(["version", "--format", "json"], { GOULETTE_MODE: "broker" });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out).version).toBe(packageVersion);
  });

  test("a GOULETTE_MODE that is not a mode is a usage error", () => {
    expectUsageError(run(["--id", "1"], { GOULETTE_MODE: "brokr" }), `goulette: GOULETTE_MODE "brokr": expected sentinel, broker, dev`);
  });

  test("unknown command, and no command at all", () => {
    expectUsageError(run(["brokr"]), `goulette: unknown command "brokr" (see goulette --help)`);
    const none = run([]);
    expect(none.code).toBe(2);
    expect(none.out).toBe("");
    expect(none.err).toContain("Usage: goulette <command>");
  });
});

describe("--help on every command", () => {
  test("top level lists every command of the contract", () => {
    const r = run(["--help"]);
    expect(r.code).toBe(0);
    for (const c of ["sentinel", "broker", "dev", "topic", "produce", "consume", "cluster", "bench", "version"]) {
      expect(r.out).toMatch(new RegExp(`^  ${c} `, "m"));
    }
  });

  for (const command of ["sentinel", "broker", "dev", "version"]) {
    test(command, () => {
      const r = run([command, "--help"]);
      expect(r.code).toBe(0);
      expect(r.err).toBe("");
      expect(r.out).toStartWith(`Usage: goulette ${command} [options]`);
    });
  }
});

describe("usage errors from the executable", () => {
  test("unknown flag", () => {
    expectUsageError(run(["broker", "--bogus"]), `goulette broker: unknown option '--bogus' (see --help)`);
  });

  test("bad port from the environment names the variable", () => {
    expectUsageError(
      run(["sentinel"], { GOULETTE_LISTEN: "127.0.0.1:123456" }),
      `goulette sentinel: GOULETTE_LISTEN "127.0.0.1:123456": port must be an integer 0-65535`,
    );
  });

  test("missing required value", () => {
    expectUsageError(
      run(["broker", "--id", "1", "--listen", "127.0.0.1:0"]),
      "goulette broker: missing required --sentinel (or GOULETTE_SENTINEL, or sentinel in the --config file)",
    );
  });

  test("bad fsync policy", () => {
    expectUsageError(
      run(["sentinel", "--fsync", "often"]),
      `goulette sentinel: --fsync "often": fsync policy must be always, never or interval:<ms> (ms 1-60000)`,
    );
  });

  test("dev: broker count and port range", () => {
    expectUsageError(run(["dev", "--brokers", "0"]), `goulette dev: --brokers "0": expected an integer 1-32`);
    expectUsageError(run(["dev", "--port", "65534", "--brokers", "3"]), `goulette dev: --port "65534": expected an integer 0-65532`);
    expectUsageError(run(["dev"], { GOULETTE_BROKERS: "three" }), `goulette dev: GOULETTE_BROKERS "three": expected an integer 1-32`);
  });
});

describe("allocator settings", () => {
  test("servers (also by GOULETTE_MODE) and the benchmark want them; short-lived clients do not", async () => {
    const { wantsAllocatorSettings } = await import("../../src/main");
    for (const mode of ["broker", "sentinel", "dev", "bench"]) expect(wantsAllocatorSettings([mode], {})).toBe(true);
    for (const cmd of ["topic", "produce", "consume", "cluster", "version"]) expect(wantsAllocatorSettings([cmd], {})).toBe(false);
    expect(wantsAllocatorSettings(["--listen", "127.0.0.1:0"], { GOULETTE_MODE: "broker" })).toBe(true);
    expect(wantsAllocatorSettings([], {})).toBe(false);
  });

  test("a server run from source re-executes itself with the setting, same pid", async () => {
    const dir = mkdtempSync(join(tmpdir(), "goulette-alloc-"));
    const p = Bun.spawn([process.execPath, main, "sentinel", "--listen", "127.0.0.1:0", "--data-dir", dir], {
      cwd: root,
      env: cleanEnv(),
      stdin: "ignore",
      stdout: "ignore",
      stderr: "pipe",
    });
    try {
      const reader = p.stderr.getReader();
      let text = "";
      while (!text.includes('"listening"')) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`sentinel exited: ${text}`);
        text += new TextDecoder().decode(value);
      }
      const environ = readFileSync(`/proc/${p.pid}/environ`, "utf8");
      expect(environ.split("\0")).toContain("MIMALLOC_PURGE_DELAY=-1");
      expect(text).toContain(`"pid":${p.pid}`);
    } finally {
      p.kill("SIGTERM");
      await p.exited;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
