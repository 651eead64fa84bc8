// `goulette dev` with the real sentinel and brokers, run from source as `bun run dev` does.
import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

setDefaultTimeout(60_000);

const root = join(import.meta.dir, "../..");
const main = join(root, "src/main.ts");
const dataDir = mkdtempSync(join(tmpdir(), "goulette-cli-dev-"));
const spawned: { kill(signal?: number | NodeJS.Signals): void; exited: Promise<number> }[] = [];

afterAll(async () => {
  for (const p of spawned) p.kill("SIGKILL");
  await Promise.all(spawned.map((p) => p.exited));
  rmSync(dataDir, { recursive: true, force: true });
});

function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("GOULETTE_")) env[k] = v;
  return env;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test("dev starts a sentinel and 3 brokers that register as healthy, and SIGTERM stops them all", async () => {
  const dev = Bun.spawn([process.execPath, main, "dev", "--port", "0", "--format", "json", "--data-dir", dataDir], {
    cwd: root,
    env: cleanEnv(),
    stdin: "ignore",
    stdout: "pipe",
    stderr: "ignore",
  });
  spawned.push(dev);
  let text = "";
  const decoder = new TextDecoder();
  for await (const chunk of dev.stdout) {
    text += decoder.decode(chunk, { stream: true });
    if (text.includes("\n")) break;
  }
  const ready = JSON.parse(text.slice(0, text.indexOf("\n"))) as {
    sentinel: string;
    brokers: { id: number; address: string; pid: number }[];
  };
  expect(ready.brokers.map((b) => b.id)).toEqual([1, 2, 3]);

  // The brokers found the sentinel dev started: all three are healthy in its map, at the addresses dev printed.
  const deadline = Date.now() + 30_000;
  let healthy: { id: number; address: string }[] = [];
  while (Date.now() < deadline) {
    const r = Bun.spawnSync([process.execPath, main, "cluster", "status", "--format", "json", "--sentinel", ready.sentinel], {
      cwd: root,
      env: cleanEnv(),
      timeout: 15_000,
    });
    healthy = r.stdout
      .toString()
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { type?: string; id: number; address: string; health?: string })
      .filter((o) => o.type === "broker" && o.health === "healthy")
      .map(({ id, address }) => ({ id, address }));
    if (healthy.length === 3) break;
    await Bun.sleep(200);
  }
  expect(healthy.sort((a, b) => a.id - b.id)).toEqual(ready.brokers.map(({ id, address }) => ({ id, address })));
  for (const d of ["sentinel", "b1", "b2", "b3"]) expect(existsSync(join(dataDir, d))).toBe(true);

  dev.kill("SIGTERM");
  expect(await dev.exited).toBe(0);
  expect(ready.brokers.map((b) => b.pid).filter(isAlive)).toEqual([]);
});
