// Starts sentinels and brokers as real, separate processes on loopback (free ports, temporary data
// directories), each broker behind a proxy it advertises, and applies process-level faults to them:
// kill -9 and restart with the same data, SIGSTOP/SIGCONT, sentinel kill/restart, and a restart with the
// newest WAL record torn. Every process started is stopped by stop(), and killed on process exit.
//
// One sentinel (the embedded default) or three replicating the map as one Raft group (`--peers`/`--id`);
// brokers and clients are given every sentinel address and follow NOT_SENTINEL_LEADER to the leader.
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, rmSync, statSync, truncateSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { reservePorts } from "../ports";
import { ProxyNet } from "./proxy";

const repoRoot = join(import.meta.dir, "..", "..");
/** Processes log warnings only, unless E2E_LOG_LEVEL asks for more to explain a failing seed. */
const LOG_LEVEL = process.env.E2E_LOG_LEVEL ?? "warn";

/** The command that runs goulette: $GOULETTE_BIN, else a dist/goulette newer than src/, else bun src/main.ts. */
export function gouletteCommand(): string[] {
  const env = process.env.GOULETTE_BIN;
  if (env) return [env];
  const dist = join(repoRoot, "dist", "goulette");
  if (existsSync(dist) && statSync(dist).mtimeMs > newestMtimeMs(join(repoRoot, "src"))) return [dist];
  return [process.execPath, join(repoRoot, "src", "main.ts")];
}

function newestMtimeMs(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtimeMs(p) : statSync(p).mtimeMs);
  }
  return newest;
}

// Every live child of this process, so an exit for any reason (a failed test, Ctrl-C) kills them all.
const live = new Set<Subprocess>();
let exitHooked = false;
function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  const killAll = () => {
    for (const p of live) {
      try {
        process.kill(p.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  };
  process.on("exit", killAll);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(sig, () => {
      killAll();
      process.exit(130);
    });
  }
}

// Clusters not yet stopped, so a test's afterAll can stop what a timed-out test left behind.
const clusters = new Set<Cluster>();

/** Stops every cluster this process started and has not stopped yet. */
export async function stopAllClusters(): Promise<void> {
  await Promise.all([...clusters].map((c) => c.stop()));
}

export interface Node {
  label: string; // "sentinel" (alone) or "s1".."s3", then "b1", "b2", ...
  args: string[];
  logPath: string;
  dataDir: string;
  proc: Subprocess | undefined;
  paused: boolean;
}

export interface ClusterOptions {
  brokers?: number;
  /** One sentinel, or three replicating the map (default 1). */
  sentinels?: 1 | 3;
  /** Extra flags for every broker. */
  brokerArgs?: string[];
  /** Extra flags for every sentinel. */
  sentinelArgs?: string[];
  /** Keep the temporary directory (logs, data) after stop(). */
  keep?: boolean;
}

export class Cluster {
  readonly dir = mkdtempSync(join(tmpdir(), "goulette-e2e-"));
  readonly command = gouletteCommand();
  readonly net = new ProxyNet((port) => this.identify(port));
  readonly sentinels: Node[] = [];
  /** Index i is sentinel i+1 (its --id); brokers and clients get all of them. */
  readonly sentinelAddresses: string[] = [];
  readonly brokers: Node[] = [];
  /** Advertised (proxy) address per broker label. */
  readonly advertised = new Map<string, string>();
  private stopped = false;
  private keepDir = false;

  constructor(private readonly opts: ClusterOptions = {}) {
    hookExit();
    clusters.add(this);
  }

  static async start(opts: ClusterOptions = {}): Promise<Cluster> {
    const c = new Cluster(opts);
    try {
      await c.boot();
    } catch (e) {
      await c.stop();
      throw e;
    }
    return c;
  }

  private async boot(): Promise<void> {
    const count = this.opts.sentinels ?? 1;
    const brokers = this.opts.brokers ?? 3;
    // Every port is chosen, and every proxy listening, before any child starts (see test/ports.ts).
    const reserved = reservePorts(count + brokers);
    const brokerPorts = reserved.ports.slice(count);
    for (const port of reserved.ports.slice(0, count)) this.sentinelAddresses.push(`127.0.0.1:${port}`);
    const advertised = brokerPorts.map((port, i) => this.net.add(`b${i + 1}`, port));
    reserved.release();
    for (let i = 0; i < count; i++) {
      const label = count === 1 ? "sentinel" : `s${i + 1}`;
      const dataDir = join(this.dir, label);
      const peers = count === 1 ? [] : ["--peers", this.sentinelAddresses.join(","), "--id", String(i + 1)];
      const s = this.node(label, [
        "sentinel",
        "--listen",
        this.sentinelAddresses[i]!,
        ...peers,
        "--data-dir",
        dataDir,
        "--log-level",
        LOG_LEVEL,
        ...(this.opts.sentinelArgs ?? []),
      ]);
      s.dataDir = dataDir;
      this.sentinels.push(s);
      this.spawn(s);
    }
    for (let id = 1; id <= brokers; id++) {
      const label = `b${id}`;
      const port = brokerPorts[id - 1]!;
      const advertise = advertised[id - 1]!;
      this.advertised.set(label, advertise);
      const dataDir = join(this.dir, label);
      const b = this.node(label, [
        "broker",
        "--id",
        String(id),
        "--listen",
        `127.0.0.1:${port}`,
        "--advertise",
        advertise,
        "--sentinel",
        this.sentinelAddresses.join(","),
        "--data-dir",
        dataDir,
        "--log-level",
        LOG_LEVEL,
        ...(this.opts.brokerArgs ?? []),
      ]);
      b.dataDir = dataDir;
      this.brokers.push(b);
      this.spawn(b);
    }
  }

  private node(label: string, args: string[]): Node {
    return { label, args, logPath: join(this.dir, `${label}.log`), dataDir: "", proc: undefined, paused: false };
  }

  /** Every process of the cluster, sentinels first. */
  nodes(): Node[] {
    return [...this.sentinels, ...this.brokers];
  }

  broker(label: string): Node {
    const b = this.brokers.find((x) => x.label === label);
    if (!b) throw new Error(`no broker ${label}`);
    return b;
  }

  private spawn(n: Node): void {
    if (this.stopped) throw new Error("cluster stopped");
    if (n.proc && n.proc.exitCode === null && n.proc.signalCode === null) throw new Error(`${n.label} is already running`);
    const fd = openSync(n.logPath, "a");
    writeSync(fd, `--- start ${new Date().toISOString()} ${this.command.join(" ")} ${n.args.join(" ")}\n`);
    const p = Bun.spawn([...this.command, ...n.args], { stdout: fd, stderr: fd, stdin: "ignore", env: { ...process.env } });
    closeSync(fd);
    live.add(p);
    void p.exited.then(() => live.delete(p));
    n.proc = p;
    n.paused = false;
  }

  running(n: Node): boolean {
    return n.proc !== undefined && n.proc.exitCode === null && n.proc.signalCode === null;
  }

  async kill9(n: Node): Promise<void> {
    const p = n.proc;
    if (!p) return;
    try {
      p.kill("SIGKILL");
    } catch {
      // already gone
    }
    await p.exited;
    n.paused = false;
  }

  async restart(n: Node): Promise<void> {
    await this.kill9(n);
    this.spawn(n);
  }

  start(n: Node): void {
    this.spawn(n);
  }

  pause(n: Node): void {
    if (!this.running(n)) throw new Error(`${n.label} is not running`);
    n.proc!.kill("SIGSTOP");
    n.paused = true;
  }

  resume(n: Node): void {
    if (!n.paused) return;
    if (this.running(n)) n.proc!.kill("SIGCONT");
    n.paused = false;
  }

  /** Kills the broker, cuts a few bytes inside the last record of its newest WAL segment, starts it again. */
  async restartWithTornWal(n: Node, cutBytes: number): Promise<TearResult | undefined> {
    await this.kill9(n);
    const r = tearLastWalRecord(join(n.dataDir, ".wal"), cutBytes);
    this.spawn(n);
    return r;
  }

  /**
   * kill -9, then damage one sealed segment of one of the broker's partitions as a disk or an operator
   * might (a flipped byte, the file cut short, the file gone), then restart: the broker must find the
   * damage and repair it from a peer, so the end-of-run check sees identical replicas. `random` draws
   * in [0, 1) decide which partition, which segment and where.
   */
  async restartWithDamagedSegment(n: Node, how: "flip" | "cut" | "delete", random: () => number): Promise<SegmentDamage | undefined> {
    await this.kill9(n);
    try {
      const dirs = partitionDirs(n);
      const pickDir = dirs[Math.floor(random() * dirs.length)];
      if (pickDir === undefined) return undefined;
      const logs = readdirSync(pickDir).filter((f) => /^\d{20}\.log$/.test(f)).sort();
      const sealed = logs.slice(0, -1); // the newest is the active one
      const name = sealed[Math.floor(random() * sealed.length)];
      if (name === undefined) return undefined;
      const file = join(pickDir, name);
      const size = statSync(file).size;
      const at = Math.floor(random() * size);
      if (how === "delete") {
        for (const ext of [".log", ".index", ".timeindex"]) rmSync(file.replace(/\.log$/, ext), { force: true });
        return { file: file.slice(n.dataDir.length + 1), size };
      }
      if (how === "cut") {
        truncateSync(file, at);
        return { file: file.slice(n.dataDir.length + 1), at, size };
      }
      const fd = openSync(file, "r+");
      try {
        const b = Buffer.alloc(1);
        readSync(fd, b, 0, 1, at);
        b[0] = b[0]! ^ 0x5a;
        writeSync(fd, b, 0, 1, at);
      } finally {
        closeSync(fd);
      }
      return { file: file.slice(n.dataDir.length + 1), at, size };
    } finally {
      this.spawn(n);
    }
  }

  /** Heals the network and wakes every paused process; starts any process that is down. */
  healAll(): void {
    this.net.healAll();
    for (const n of this.nodes()) {
      if (n.paused) this.resume(n);
      if (!this.running(n)) this.spawn(n);
    }
  }

  /**
   * Makes one of the broker's partitions unwritable while it runs, as a failing disk would for that
   * partition alone: `chattr +i` on its directory (no new file: a segment roll fails) and on its newest
   * segment (writes through the open file fail with EPERM, root's included). The WAL is untouched. Returns
   * the undo, which must run whatever happens (an immutable file outlives the run). `random` picks the
   * partition.
   */
  freezePartition(n: Node, random: () => number): { dir: string; undo: () => void } | undefined {
    const dirs = partitionDirs(n);
    const dir = dirs[Math.floor(random() * dirs.length)];
    if (dir === undefined) return undefined;
    const newest = readdirSync(dir).filter((f) => /^\d{20}\.log$/.test(f)).sort().at(-1);
    const targets = newest === undefined ? [dir] : [dir, join(dir, newest)];
    const chattr = (flag: string, paths: string[]) => {
      const r = Bun.spawnSync(["chattr", flag, ...paths], { stderr: "pipe" });
      if (r.exitCode !== 0) throw new Error(`chattr ${flag} ${paths.join(" ")}: ${r.stderr.toString().trim()}`);
    };
    chattr("+i", targets);
    return { dir: dir.slice(n.dataDir.length + 1), undo: () => chattr("-i", targets) };
  }

  /** How many times the node's log says one of its partitions stopped taking writes (a storage fault). */
  partitionFailuresLogged(n: Node): number {
    return linesLogged(n, ['"partition stopped accepting writes"']);
  }

  /** How many times the node's log says its WAL recovery cut a torn or corrupt record. */
  walCutsLogged(n: Node): number {
    return linesLogged(n, ["WAL torn tail cut", "WAL corruption"]);
  }

  /** Lines of a node's log that look like errors, for a failure report. */
  logTail(n: Node, lines = 20): string {
    if (!existsSync(n.logPath)) return "";
    const all = readFileSync(n.logPath, "utf8").split("\n");
    return all.slice(-lines).join("\n");
  }

  /** Keep the data and logs after stop() (a failed run keeps them to be looked at). */
  keepFiles(): void {
    this.keepDir = true;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clusters.delete(this);
    await Promise.all(this.nodes().map((n) => this.kill9(n)));
    this.net.stop();
    if (!this.opts.keep && !this.keepDir && !process.env.KEEP) rmSync(this.dir, { recursive: true, force: true });
  }

  /** Which of our processes holds the socket whose local port is `port` ("client" for this process). */
  private identify(port: number): string {
    const inode = socketInode(port);
    if (inode === undefined) return "unknown";
    const nodes = this.nodes().filter((n) => n.proc !== undefined);
    for (const n of nodes) if (holdsSocket(n.proc!.pid, inode)) return n.label;
    if (holdsSocket(process.pid, inode)) return "client";
    return "unknown";
  }
}

/** The inode of the IPv4/IPv6 TCP socket bound to local `port`, from /proc/net/tcp{,6}. */
function socketInode(port: number): string | undefined {
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = readFileSync(table, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      if (f[1]!.endsWith(`:${hex}`) && f[9] !== "0") return f[9];
    }
  }
  return undefined;
}

function holdsSocket(pid: number, inode: string): boolean {
  const want = `socket:[${inode}]`;
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false;
  }
  for (const fd of fds) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) === want) return true;
    } catch {
      // closed meanwhile
    }
  }
  return false;
}

// ---- WAL tearing (layout: src/storage/wal.ts and wal-record.ts) ----

const SEGMENT_HEADER_BYTES = 32;
const RECORD_HEADER_BYTES = 29;
const RECORD_BYTES_MAX = 256 * 1024 * 1024;

export interface TearResult {
  file: string;
  recordAt: number;
  recordBytes: number;
  recordType: number;
  cutBytes: number; // 0 when the last record was already torn
}

/**
 * Zeroes the last `cutBytes` of the last record in the newest WAL segment, as a write torn by a crash
 * would leave it (segments are preallocated with zeros, so a torn record ends in zeros). Walks records by
 * their length field only; checksums are the broker's business. Returns undefined when the WAL has no record.
 */
/** How many lines of the node's log (all its runs) hold any of `needles`. */
function linesLogged(n: Node, needles: string[]): number {
  if (!existsSync(n.logPath)) return 0;
  return readFileSync(n.logPath, "utf8").split("\n").filter((l) => needles.some((x) => l.includes(x))).length;
}

/** Every partition directory under a broker's data dir (<topic>/<partition>), in a stable order. */
function partitionDirs(n: Node): string[] {
  const dirs: string[] = [];
  for (const topic of readdirSync(n.dataDir).filter((t) => !t.startsWith(".")).sort()) {
    const tdir = join(n.dataDir, topic);
    if (!statSync(tdir).isDirectory()) continue;
    for (const part of readdirSync(tdir).sort()) dirs.push(join(tdir, part));
  }
  return dirs;
}

/** What restartWithDamagedSegment did: the file (under the data dir), and where unless it was deleted. */
export interface SegmentDamage {
  file: string;
  size: number;
  at?: number;
}

export function tearLastWalRecord(walDir: string, cutBytes: number): TearResult | undefined {
  if (!existsSync(walDir)) return undefined;
  const segs = readdirSync(walDir).filter((n) => /^\d{16}\.wal$/.test(n)).sort();
  for (let i = segs.length - 1; i >= 0; i--) {
    const file = join(walDir, segs[i]!);
    const data = readFileSync(file);
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    if (data.length < SEGMENT_HEADER_BYTES || Number(view.getBigUint64(8, true)) !== Number(segs[i]!.slice(0, 16))) continue;
    const salt = Number(segs[i]!.slice(0, 16)) >>> 0;
    let pos = SEGMENT_HEADER_BYTES;
    let last: { at: number; len: number } | undefined;
    while (pos + 4 <= data.length) {
      const len = view.getUint32(pos, true);
      if (len < RECORD_HEADER_BYTES || len > RECORD_BYTES_MAX || pos + len > data.length) break;
      if (Bun.hash.crc32(data.subarray(pos + 8, pos + len), salt) !== view.getUint32(pos + 4, true)) {
        // Torn before and not yet recovered (the broker died again first): tearing more adds nothing.
        return { file, recordAt: pos, recordBytes: len, recordType: data[pos + 28]!, cutBytes: 0 };
      }
      last = { at: pos, len };
      pos += len;
    }
    if (!last) continue;
    // Keep the length field (a torn tail, not a clean end), and zero at least one byte that was not zero,
    // or the record would still verify.
    const end = last.at + last.len;
    let start = end - Math.max(1, Math.min(cutBytes, last.len - 4));
    while (start > last.at + 4 && data.subarray(start, end).every((b) => b === 0)) start--;
    const cut = end - start;
    const fd = openSync(file, "r+");
    try {
      writeSync(fd, new Uint8Array(cut), 0, cut, start);
    } finally {
      closeSync(fd);
    }
    return { file, recordAt: last.at, recordBytes: last.len, recordType: data[last.at + 28]!, cutBytes: cut };
  }
  return undefined;
}
