// A fresh Goulette cluster for one suite, in a temp dir on free loopback ports: one sentinel and N brokers.
// "dev" starts them the way users do (`goulette dev --port 0 --format json`); "direct" starts each process
// itself with the same flags dev passes, which a suite needs to restart a broker it killed (same id,
// address and data dir) or to run a broker under the CPU profiler.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Admin } from "../../src/client/admin";
import { progress } from "./emit";
import { ALLOCATOR_ENV, ALLOCATOR_VALUE } from "../../src/cli/allocator";
import { gouletteCommand, profiledCommand, type GouletteCommand } from "./goulette";
import { alive, signal, spawn, stop, type Child } from "./proc";

const listenTimeoutMs = 60_000;

export interface BrokerProcess {
  id: number;
  address: string;
  pid: number;
  dataDir: string;
  /** Set when this run started the process itself (direct mode, or a restart). */
  child?: Child;
}

export interface ClusterOptions {
  brokers?: number;
  mode: "dev" | "direct";
  /** Direct mode: run these broker ids under `bun --cpu-prof`, writing profiles here. */
  profile?: { ids: number[]; dir: string };
  fsync?: string;
}

export class Cluster {
  private constructor(
    readonly dir: string,
    readonly command: GouletteCommand,
    readonly sentinel: string,
    readonly brokers: BrokerProcess[],
    private readonly processes: Child[],
    private readonly options: ClusterOptions,
  ) {}

  static async start(options: ClusterOptions): Promise<Cluster> {
    const dir = mkdtempSync(join(tmpdir(), "goulette-bench-"));
    const command = gouletteCommand();
    const count = options.brokers ?? 3;
    progress(`cluster: ${options.mode} mode, ${count} brokers, ${command.kind} (${command.argv.join(" ")}), data in ${dir}`);
    const processes: Child[] = [];
    try {
      if (options.mode === "dev") {
        const dev = spawn("dev", [...command.argv, "dev", "--port", "0", "--brokers", String(count), "--data-dir", dir, "--format", "json", ...(options.fsync ? ["--fsync", options.fsync] : [])], {
          stdinPipe: true,
        });
        processes.push(dev);
        const ready = await firstStdoutJson(dev, listenTimeoutMs);
        const brokers = (ready.brokers as { id: number; address: string; pid: number }[]).map((b) => ({
          ...b,
          dataDir: join(dir, `b${b.id}`),
        }));
        const cluster = new Cluster(dir, command, String(ready.sentinel), brokers, processes, options);
        await cluster.waitHealthy(count);
        return cluster;
      }
      const sentinelChild = spawn("sentinel", [...command.argv, "sentinel", "--listen", "127.0.0.1:0", "--data-dir", join(dir, "sentinel"), ...(options.fsync ? ["--fsync", options.fsync] : [])], {
        onStderrLine: () => {},
      });
      processes.push(sentinelChild);
      const sentinel = await listening(sentinelChild);
      const cluster = new Cluster(dir, command, sentinel, [], processes, options);
      const started = await Promise.all(
        Array.from({ length: count }, (_, i) => cluster.startBroker(i + 1, "127.0.0.1:0")),
      );
      cluster.brokers.push(...started);
      await cluster.waitHealthy(count);
      return cluster;
    } catch (e) {
      for (const p of processes) await stop(p);
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  }

  /** The sentinel's pid when this run started it directly (dev mode hides it behind dev). */
  get sentinelPid(): number | undefined {
    return this.options.mode === "direct" ? this.processes.find((c) => c.name === "sentinel")?.proc.pid : undefined;
  }

  /**
   * The last notable log lines of the cluster's processes (errors, warnings, a child that died): what a
   * failed measurement should show, since the logs themselves are not forwarded by default.
   */
  notableLog(max = 6): string[] {
    const lines: string[] = [];
    for (const c of this.processes) {
      for (const l of c.stderrLines) {
        if (/"level":"(error|warn)"|was killed|exited with|panic|uncaught|Error:/i.test(l)) lines.push(`${c.name}: ${l.slice(0, 300)}`);
      }
    }
    return lines.slice(-max);
  }

  broker(id: number): BrokerProcess {
    const b = this.brokers.find((x) => x.id === id);
    if (!b) throw new Error(`no broker ${id} in this cluster`);
    return b;
  }

  brokerByAddress(address: string): BrokerProcess | undefined {
    return this.brokers.find((b) => b.address === address);
  }

  /** kill -9: the process gets no chance to flush, sync or say goodbye. */
  killBroker(id: number): void {
    const b = this.broker(id);
    if (b.child) signal(b.child, "SIGKILL");
    else {
      try {
        process.kill(b.pid, "SIGKILL");
      } catch {
        // Already dead.
      }
    }
  }

  /** Starts a broker that was killed again, with its id, address and data dir. */
  async restartBroker(id: number): Promise<BrokerProcess> {
    const b = this.broker(id);
    if (b.child && alive(b.child)) throw new Error(`broker ${id} is still running`);
    const again = await this.startBroker(id, b.address);
    Object.assign(b, again);
    return b;
  }

  async waitHealthy(count: number, withinMs = 30_000): Promise<void> {
    const admin = new Admin({ sentinels: [this.sentinel] });
    try {
      const deadline = Date.now() + withinMs;
      for (;;) {
        const status = await admin.clusterStatus().catch(() => undefined);
        const healthy = status?.brokers.filter((b) => b.health === "healthy").length ?? 0;
        if (healthy >= count) return;
        if (Date.now() > deadline) throw new Error(`only ${healthy} of ${count} brokers healthy after ${withinMs} ms`);
        await Bun.sleep(100);
      }
    } finally {
      await admin.close();
    }
  }

  /** Stops every process of the cluster (SIGTERM, then SIGKILL) and deletes its data. */
  async stop(): Promise<void> {
    const mine = [...this.processes];
    // Brokers before the sentinel (dev does the same), so nothing fails over while the cluster goes away.
    await Promise.all(mine.filter((c) => c.name.startsWith("broker")).map((c) => stop(c)));
    await Promise.all(mine.filter((c) => !c.name.startsWith("broker")).map((c) => stop(c)));
    if (process.env.BENCH_KEEP !== "1") rmSync(this.dir, { recursive: true, force: true });
  }

  private async startBroker(id: number, listenAddress: string): Promise<BrokerProcess> {
    const dataDir = join(this.dir, `b${id}`);
    mkdirSync(dataDir, { recursive: true });
    const profiled = this.options.profile?.ids.includes(id);
    const argv = profiled ? profiledCommand(this.options.profile!.dir, `broker-${id}`) : this.command.argv;
    const child = spawn(`broker ${id}`, [
      ...argv,
      "broker",
      "--id",
      String(id),
      "--listen",
      listenAddress,
      "--sentinel",
      this.sentinel,
      "--data-dir",
      dataDir,
      ...(this.options.fsync ? ["--fsync", this.options.fsync] : []),
    ], profiled ? { env: { [ALLOCATOR_ENV]: ALLOCATOR_VALUE } } : {});
    this.processes.push(child);
    const address = await listening(child);
    return { id, address, pid: child.proc.pid, dataDir, child };
  }
}

/** The address of a server's {"event":"listening"} log line, or an error with its last log lines. */
/** The address a Goulette server child reports in its "listening" log line (bench/ab.ts waits on it too). */
export async function listening(child: Child): Promise<string> {
  const deadline = Date.now() + listenTimeoutMs;
  let seen = 0;
  while (Date.now() < deadline) {
    for (; seen < child.stderrLines.length; seen++) {
      const address = listeningAddress(child.stderrLines[seen]!);
      if (address) return address;
    }
    if (!alive(child)) break;
    await Bun.sleep(20);
  }
  throw new Error(`${child.name} did not report listening: ${child.stderrLines.slice(-5).join(" | ")}`);
}

function listeningAddress(line: string): string | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const o = JSON.parse(line) as { event?: unknown; address?: unknown };
    return o.event === "listening" && typeof o.address === "string" ? o.address : undefined;
  } catch {
    return undefined;
  }
}

/** dev prints one JSON line on stdout once all its children listen; stdout is otherwise empty. */
async function firstStdoutJson(child: Child, timeoutMs: number): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  while (child.stdoutLines.length === 0) {
    if (!alive(child)) throw new Error(`dev exited before it was ready: ${child.stderrLines.slice(-5).join(" | ")}`);
    if (Date.now() > deadline) throw new Error(`dev not ready after ${timeoutMs} ms: ${child.stderrLines.slice(-5).join(" | ")}`);
    await Bun.sleep(20);
  }
  return JSON.parse(child.stdoutLines[0]!) as Record<string, unknown>;
}
