// The compiled executable: built once into temp folders, copied alone (no node_modules beside it) and run.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { version as packageVersion } from "../../package.json";
import { build } from "../../build";


// Each test spawns real processes; on a busy 2-core machine a spawn can take most of a second.
setDefaultTimeout(30_000);
const root = join(import.meta.dir, "../..");
const work = mkdtempSync(join(tmpdir(), "goulette-cli-binary-"));
const started: Subprocess[] = [];
let realBinary = "";
let fakeBinary = "";
let fakeTree = "";

function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("GOULETTE_")) env[k] = v;
  return { ...env, ...extra };
}

/** Copies the executable alone into a new empty folder, so nothing beside it can be what makes it work. */
function isolate(binary: string, name: string): string {
  const dir = join(work, name);
  mkdirSync(dir);
  const to = join(dir, "goulette");
  copyFileSync(binary, to);
  Bun.spawnSync(["chmod", "+x", to]);
  return to;
}

/**
 * A copy of src/ whose broker, sentinel and one client command are fakes (fixtures/), built with the
 * copy's build.ts: tests dispatch and process handling in the compiled form without the real servers.
 */
async function buildFakeTree(): Promise<string> {
  fakeTree = join(work, "tree");
  cpSync(join(root, "src"), join(fakeTree, "src"), { recursive: true });
  for (const f of ["package.json", "build.ts", "tsconfig.json"]) copyFileSync(join(root, f), join(fakeTree, f));
  symlinkSync(join(root, "node_modules"), join(fakeTree, "node_modules"));
  rmSync(join(fakeTree, "src/cli/commands"), { recursive: true, force: true });
  mkdirSync(join(fakeTree, "src/cli/commands"));
  const fake = join(import.meta.dir, "fixtures/fake-server.ts");
  copyFileSync(fake, join(fakeTree, "src/broker/index.ts"));
  copyFileSync(fake, join(fakeTree, "src/sentinel/index.ts"));
  const command = readFileSync(join(import.meta.dir, "fixtures/fake-command.ts"), "utf8");
  writeFileSync(join(fakeTree, "src/cli/commands/topic.ts"), command.replace("../../../src/cli/usage-error", "../usage-error"));
  // The copy's own build.ts, so its root is the copy; bytecode off because it only slows this build.
  const copy = (await import(join(fakeTree, "build.ts"))) as typeof import("../../build");
  return (await copy.build(join(work, "fake-out/goulette"), { bytecode: false })).outfile;
}

beforeAll(async () => {
  realBinary = isolate((await build(join(work, "real-out/goulette"))).outfile, "real");
  fakeBinary = isolate(await buildFakeTree(), "fake");
}, 120_000);

afterAll(async () => {
  for (const p of started) p.kill("SIGKILL");
  await Promise.all(started.map((p) => p.exited));
  rmSync(work, { recursive: true, force: true });
});

function runSync(cmd: string[], env: Record<string, string> = {}) {
  const r = Bun.spawnSync(cmd, { cwd: work, env: cleanEnv(env), stdin: "ignore", timeout: 20_000 });
  return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
}

/** Reads a stream line by line; `next(pred)` waits for the first line matching pred, keeping all seen. */
function lineReader(stream: ReadableStream<Uint8Array>) {
  const seen: string[] = [];
  const waiters: { pred: (l: string) => boolean; resolve: (l: string) => void }[] = [];
  let ended = false;
  void (async () => {
    let pending = "";
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      pending += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        seen.push(line);
        for (const w of waiters.splice(0)) if (w.pred(line)) w.resolve(line); else waiters.push(w);
      }
    }
    ended = true;
  })();
  return {
    seen,
    next(pred: (l: string) => boolean, timeoutMs = 20_000): Promise<string> {
      const hit = seen.find(pred);
      if (hit !== undefined) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no matching line within ${timeoutMs} ms (ended=${ended}); saw:\n${seen.join("\n")}`)), timeoutMs);
        waiters.push({ pred, resolve: (l) => (clearTimeout(timer), resolve(l)) });
      });
    },
  };
}

function spawn(cmd: string[], extraEnv: Record<string, string> = {}) {
  const p = Bun.spawn(cmd, { cwd: work, env: cleanEnv(extraEnv), stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  started.push(p);
  return { p, out: lineReader(p.stdout), err: lineReader(p.stderr) };
}

async function greeting(address: string): Promise<string> {
  const colon = address.lastIndexOf(":");
  return new Promise((resolve, reject) => {
    let got = "";
    void Bun.connect({
      hostname: address.slice(0, colon),
      port: Number(address.slice(colon + 1)),
      socket: { data: (_s, d) => void (got += d.toString()), close: () => resolve(got), error: (_s, e) => reject(e) },
    }).catch(reject);
  });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("compiled executable", () => {
  test("version runs with no node_modules beside it and carries the git commit", () => {
    const head = runSync(["git", "-C", root, "rev-parse", "--short=12", "HEAD"]).out.trim();
    const text = runSync([realBinary, "version"]);
    expect(text.code).toBe(0);
    expect(text.out).toMatch(new RegExp(`^goulette ${packageVersion}\\nbun      ${Bun.version}\\ncommit   [0-9a-f]{12}(-dirty)?\\n$`));
    const json = runSync([realBinary, "version", "--format", "json"]);
    expect(json.code).toBe(0);
    const info = JSON.parse(json.out) as { version: string; bun: string; commit: string };
    expect(info.version).toBe(packageVersion);
    expect(info.bun).toBe(Bun.version);
    // Others may commit between the build and this line; the embedded one must be a real commit of ours.
    const known = runSync(["git", "-C", root, "cat-file", "-t", info.commit.replace(/-dirty$/, "")]).out.trim();
    expect(known).toBe("commit");
    expect(head).toMatch(/^[0-9a-f]{12}$/);
  });

  test("every mode and command of the real tree is inside the executable (--help answers)", () => {
    for (const command of ["sentinel", "broker", "dev", "topic", "produce", "consume", "cluster", "bench", "version"]) {
      const r = runSync([realBinary, command, "--help"]);
      expect({ command, code: r.code, err: r.err }).toEqual({ command, code: 0, err: "" });
      expect(r.out).toMatch(/usage:/i);
    }
  });

  test("client commands dispatch to src/cli/commands/<name>.ts run(args, env) and keep its exit code", () => {
    const r = runSync([fakeBinary, "topic", "create", "t1", "--partitions", "2"], { GOULETTE_SENTINEL: "127.0.0.1:7070" });
    expect(r.code).toBe(3);
    expect(JSON.parse(r.out)).toEqual({ args: ["create", "t1", "--partitions", "2"], sentinel: "127.0.0.1:7070" });
  });

  test("a command's UsageError exits 2 and any other error exits 1, each as one line", () => {
    const bad = runSync([fakeBinary, "topic", "bad", "x"]);
    expect(bad.code).toBe(2);
    expect(bad.err).toBe(`goulette topic: "x" is not a thing\n`);
    const crash = runSync([fakeBinary, "topic", "crash"]);
    expect(crash.code).toBe(1);
    expect(crash.err).toBe("goulette topic: it broke\n");
  });

  test("a command whose file is not in the build fails with one line, exit 1", () => {
    const r = runSync([fakeBinary, "produce", "t1"]);
    expect(r.code).toBe(1);
    expect(r.err).toBe("goulette produce: not available in this build (src/cli/commands/produce.ts)\n");
  });

  test("broker logs where it listens and stops cleanly on SIGTERM with exit 0", async () => {
    const b = spawn([fakeBinary, "broker", "--id", "4", "--listen", "127.0.0.1:0", "--sentinel", "127.0.0.1:1"]);
    const line = JSON.parse(await b.err.next((l) => l.includes('"listening"'))) as Record<string, unknown>;
    expect(line).toMatchObject({ level: "info", mode: "broker", id: 4, event: "listening", pid: b.p.pid });
    expect(await greeting(String(line.address))).toBe("fake\n");
    b.p.kill("SIGTERM");
    expect(await b.p.exited).toBe(0);
    await b.err.next((l) => l.includes('"stopped"'));
  });

  /** The environment a running process has now (after any re-exec), from /proc. */
  function environOf(pid: number): Record<string, string> {
    const out: Record<string, string> = {};
    for (const kv of readFileSync(`/proc/${pid}/environ`, "utf8").split("\0")) {
      const eq = kv.indexOf("=");
      if (eq > 0) out[kv.slice(0, eq)] = kv.slice(eq + 1);
    }
    return out;
  }

  test("a server re-executes itself once with the allocator kept from returning memory, same pid and arguments", async () => {
    const b = spawn([fakeBinary, "broker", "--id", "5", "--listen", "127.0.0.1:0", "--sentinel", "127.0.0.1:1"], { KEEP_ME: "yes" });
    const line = JSON.parse(await b.err.next((l) => l.includes('"listening"'))) as Record<string, unknown>;
    expect(line).toMatchObject({ mode: "broker", id: 5, pid: b.p.pid });
    const env = environOf(b.p.pid);
    expect(env.MIMALLOC_PURGE_DELAY).toBe("-1");
    expect(env.KEEP_ME).toBe("yes");
    expect(readFileSync(`/proc/${b.p.pid}/cmdline`, "utf8").split("\0").filter(Boolean).slice(1)).toEqual([
      "broker", "--id", "5", "--listen", "127.0.0.1:0", "--sentinel", "127.0.0.1:1",
    ]);
    b.p.kill("SIGTERM");
    expect(await b.p.exited).toBe(0);
  });

  test("a user's own allocator setting is kept", async () => {
    const b = spawn([fakeBinary, "broker", "--id", "6", "--listen", "127.0.0.1:0", "--sentinel", "127.0.0.1:1"], { MIMALLOC_PURGE_DELAY: "250" });
    await b.err.next((l) => l.includes('"listening"'));
    expect(environOf(b.p.pid).MIMALLOC_PURGE_DELAY).toBe("250");
    b.p.kill("SIGTERM");
    expect(await b.p.exited).toBe(0);
  });

  test("a server that cannot start exits 1 with one error line naming the address", () => {
    const taken = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data: () => {} } });
    try {
      const address = `127.0.0.1:${taken.port}`;
      const r = runSync([fakeBinary, "sentinel", "--listen", address, "--data-dir", join(work, "taken")]);
      expect(r.code).toBe(1);
      const lines = r.err.trimEnd().split("\n");
      expect(lines).toHaveLength(1);
      expect(JSON.parse(lines[0] ?? "")).toMatchObject({ level: "error", mode: "sentinel", event: "start_failed", listen: address });
    } finally {
      taken.stop(true);
    }
  });

  test("dev --port 0: a sentinel and brokers on free ports; a dead child is reported; SIGTERM stops all", async () => {
    const dev = spawn([fakeBinary, "dev", "--port", "0", "--brokers", "2", "--format", "json", "--data-dir", join(work, "dev0")]);
    const ready = JSON.parse(await dev.out.next((l) => l.startsWith("{"))) as {
      sentinel: string;
      brokers: { id: number; address: string; pid: number }[];
    };
    expect(ready.brokers.map((b) => b.id)).toEqual([1, 2]);
    const addresses = [ready.sentinel, ...ready.brokers.map((b) => b.address)];
    expect(new Set(addresses).size).toBe(3);
    for (const a of addresses) expect(await greeting(a)).toBe("fake\n");

    const [b1, b2] = ready.brokers;
    if (!b1 || !b2) throw new Error("expected two brokers");
    process.kill(b1.pid, "SIGKILL");
    await dev.err.next((l) => l === `goulette dev: broker 1 (pid ${b1.pid}) was killed by SIGKILL; the others keep running`);
    expect(isAlive(b2.pid)).toBe(true);

    dev.p.kill("SIGTERM");
    expect(await dev.p.exited).toBe(0);
    expect(isAlive(b2.pid)).toBe(false);
    // Each child stopped through run-server's clean path, not by SIGKILL.
    expect(dev.err.seen.filter((l) => l.includes('"event":"stopped"'))).toHaveLength(2);
  });

  test("dev: a child that cannot start is reported, the others are stopped, exit 1", async () => {
    const port = await freeRun(2);
    const taken = Bun.listen({ hostname: "127.0.0.1", port: port + 1, socket: { data: () => {} } });
    try {
      const r = runSync([fakeBinary, "dev", "--port", String(port), "--brokers", "1", "--data-dir", join(work, "dev3")]);
      expect(r.code).toBe(1);
      expect(r.out).toBe("");
      const notices = r.err.split("\n").filter((l) => l.startsWith("goulette dev:"));
      expect(notices).toEqual(["goulette dev: broker 1 exited with code 1 before listening (its log is above)"]);
      expect(r.err).toContain('"mode":"sentinel","id":1,"event":"stopped"');
    } finally {
      taken.stop(true);
    }
  });

  test("dev killed with SIGKILL still takes its children down (their stdin closes)", async () => {
    const dev = spawn([fakeBinary, "dev", "--port", "0", "--brokers", "1", "--format", "json", "--data-dir", join(work, "dev2")]);
    const ready = JSON.parse(await dev.out.next((l) => l.startsWith("{"))) as { brokers: { pid: number }[] };
    const sentinelLine = await dev.err.next((l) => l.includes('"mode":"sentinel"') && l.includes('"listening"'));
    const pids = [...ready.brokers.map((b) => b.pid), (JSON.parse(sentinelLine) as { pid: number }).pid];
    expect(pids.every((pid) => pid > 0 && isAlive(pid))).toBe(true);
    dev.p.kill("SIGKILL");
    await dev.p.exited;
    const deadline = Date.now() + 15_000;
    while (pids.some(isAlive) && Date.now() < deadline) await Bun.sleep(50);
    expect(pids.filter(isAlive)).toEqual([]);
  });

  test("dev from source (bun src/main.ts) on fixed ports: sentinel on --port, brokers on the next ones", async () => {
    const port = await freeRun(2);
    const dev = spawn([process.execPath, join(fakeTree, "src/main.ts"), "dev", "--port", String(port), "--brokers", "1", "--data-dir", join(work, "dev1")]);
    await dev.out.next((l) => l.startsWith("Ctrl-C stops them all."));
    const text = dev.out.seen.join("\n");
    expect(text).toContain(`  sentinel   127.0.0.1:${port}`);
    expect(text).toContain(`  broker 1   127.0.0.1:${port + 1}`);
    // The hints show how to run this same program again, relative to where dev was started (work/).
    expect(text).toContain("  bun tree/src/main.ts topic create demo --partitions 3 --replicas 1 --sentinel 127.0.0.1:");
    expect(await greeting(`127.0.0.1:${port + 1}`)).toBe("fake\n");
    dev.p.kill("SIGINT");
    expect(await dev.p.exited).toBe(0);
  });
});

/** A port p with p..p+n-1 all free right now (probed by binding them). */
async function freeRun(n: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const first = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data: () => {} } });
    const base = first.port;
    const held = [first];
    try {
      for (let i = 1; i < n; i++) held.push(Bun.listen({ hostname: "127.0.0.1", port: base + i, socket: { data: () => {} } }));
      if (base + n - 1 <= 65535) return base;
    } catch {
      // taken; try another base
    } finally {
      for (const h of held) h.stop(true);
    }
  }
  throw new Error("no run of free ports found");
}
