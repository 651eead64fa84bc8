// One fault-suite run: cluster up, topic RF3, workload + nemesis for a while, heal, check. Shared by the
// short form in `bun test` and the long form (faults-cli.ts).
import { create } from "@bufbuild/protobuf";
import { Admin, ErrorCode } from "../../src/client/index";
import { codeOf } from "../../src/client/errors";
import { ClusterStatusRequestSchema } from "../../src/proto/goulette_pb";
import { ClientPool, WireError, expectCase } from "../../src/wire/index";
import { replicaSet, ringPlacement } from "../ring-placement";
import { checkRun, type CheckResult } from "./checker";
import { Cluster } from "./harness";
import { defaultKinds, Nemesis, type FaultKind } from "./nemesis";

/** Partition segment size of the fault-run brokers (the broker's minimum is 64 KiB). */
const SEGMENT_BYTES = 256 * 1024;
/**
 * The sentinels move replicas back to their ring placement once its brokers have been healthy this long
 * (30 s by default): short enough that a run moves replicas back during its faults (after an outage, or a
 * replica replaced after a disk fault), and the check waits for every partition to be back on the ring.
 */
const BALANCE_AFTER_MS = 5_000;
import { Workload } from "./workload";

export interface RunOptions {
  seed: number;
  durationMs: number;
  partitions?: number;
  /** One sentinel, or three replicating the map (default 1). */
  sentinels?: 1 | 3;
  /**
   * Brokers (default 3, one per replica). With more, the sentinel has somewhere to move replicas, so a
   * replica that left its group (disk-fault) or a broker down long enough is replaced during the run.
   */
  brokers?: number;
  /** Default: every kind, outages included where there are more brokers than replicas. */
  kinds?: readonly FaultKind[];
  faultMsMin?: number;
  faultMsMax?: number;
  gapMsMin?: number;
  gapMsMax?: number;
  maxRatePerSec?: number;
  /** Meaningful work, or the run fails: defaults scale with the duration. */
  minAcks?: number;
  minFaults?: number;
  log?: (line: string) => void;
  progressEveryMs?: number;
  keep?: boolean;
}

export interface RunReport {
  ok: boolean;
  seed: number;
  durationMs: number;
  sentinels: number;
  brokers: number;
  /** Partitions whose replicas at the end are not those they were created on (the sentinel moved them). */
  replicasMoved: number;
  /** Partitions the sentinel moved off a broker during its outages (each outage waits for it). */
  outageMoves: number;
  acks: number;
  sent: number;
  failedSends: number;
  faults: number;
  faultKinds: string[];
  /** Which sentinel each sentinel-kill took down, and how it was chosen. */
  sentinelKills: string[];
  records: number;
  convergedInMs: number;
  walCuts: number;
  rereads: string[];
  framesDropped: number;
  dialers: Record<string, number>;
  problems: string[];
  history: string;
  sendErrors: Record<string, string>;
  dir: string;
}

const TOPIC = "faults";
const AFTER_HEAL_MS = 15_000;
const SENTINELS_AGREE_MS = 10_000;
const REPLICAS = 3;

/** Each partition's voters, sorted, as text: where the map has placed it now. */
async function placement(admin: Admin): Promise<Map<number, string>> {
  const t = await admin.describeTopic(TOPIC);
  return new Map(t.partitionInfo.map((p) => [p.partition, replicaSet(p.replicas)]));
}

/**
 * Retries until the sentinel is up and every broker has registered, healthy: placed with fewer (the sentinel
 * takes the topic once RF brokers are up), a fourth broker would start with no replica.
 */
async function createTopic(admin: Admin, partitions: number, brokers: number): Promise<void> {
  const until = Date.now() + 30_000;
  for (;;) {
    try {
      const healthy = (await admin.clusterStatus()).brokers.filter((b) => b.health === "healthy").length;
      if (healthy < brokers) throw new Error(`${healthy} of ${brokers} brokers healthy`);
      await admin.createTopic(TOPIC, { partitions, replicas: REPLICAS });
      return;
    } catch (e) {
      // An earlier attempt that timed out on our side may have created it.
      if (codeOf(e) === ErrorCode.TOPIC_EXISTS) return;
      if (Date.now() > until) throw new Error(`topic ${TOPIC} not created within 30 s: ${e instanceof Error ? e.message : String(e)}`);
      await Bun.sleep(100);
    }
  }
}

/**
 * Once healed, every sentinel must name the same leader, and that one must answer as leader: a restarted
 * sentinel that never rejoined, or a group that never elects, shows here even when the leader alone served
 * the run. Returns what was last seen when they do not agree within `withinMs`.
 */
async function sentinelsAgree(addresses: readonly string[], withinMs: number): Promise<string | undefined> {
  const pool = new ClientPool({ connectTimeoutMs: 500 });
  const deadline = Date.now() + withinMs;
  try {
    for (;;) {
      const said = await Promise.all(
        addresses.map(async (a, i): Promise<string> => {
          try {
            const res = await pool.get(a).call({ case: "clusterStatus", value: create(ClusterStatusRequestSchema, {}) }, { timeoutMs: 1000 });
            expectCase(res, "clusterStatusResponse"); // an error answer throws here
            return `leader ${i + 1}`;
          } catch (e) {
            if (e instanceof WireError && e.code === ErrorCode.NOT_SENTINEL_LEADER) return e.leaderId > 0 ? `leader ${e.leaderId}` : "no leader";
            return `error: ${e instanceof Error ? e.message : String(e)}`;
          }
        }),
      );
      if (said.every((x) => x === said[0]) && said[0]!.startsWith("leader ")) return undefined;
      if (Date.now() >= deadline) return addresses.map((a, i) => `${a}: ${said[i]}`).join("; ");
      await Bun.sleep(200);
    }
  } finally {
    pool.closeAll();
  }
}

/** Fault timing and load of the short form; the long form uses the same unless told otherwise. */
export const defaultTiming = { faultMsMin: 800, faultMsMax: 2000, gapMsMin: 400, gapMsMax: 1000, maxRatePerSec: 1500 };

export async function runFaults(opts: RunOptions): Promise<RunReport> {
  const log = opts.log ?? (() => {});
  const partitions = opts.partitions ?? 4;
  const seconds = opts.durationMs / 1000;
  const minAcks = opts.minAcks ?? Math.round(seconds * 20);
  const minFaults = opts.minFaults ?? Math.max(1, Math.floor(seconds / 6));
  // Small partition segments, so a run seals many and the damaged-segment fault has some to damage.
  const cluster = await Cluster.start({
    keep: opts.keep,
    sentinels: opts.sentinels,
    brokers: opts.brokers,
    brokerArgs: ["--segment-bytes", String(SEGMENT_BYTES)],
    sentinelArgs: ["--balance-after-ms", String(BALANCE_AFTER_MS)],
  });
  const sentinels = cluster.sentinelAddresses;
  let nemesis: Nemesis | undefined;
  let workload: Workload | undefined;
  const problems: string[] = [];
  let check: CheckResult | undefined;
  let walCuts = 0;
  let placedAt = new Map<number, string>();
  let replicasMoved = 0;
  let framesDropped = 0;
  let dialers: Record<string, number> = {};
  try {
    const admin = new Admin({ sentinels, sentinelTimeoutMs: 2000 });
    try {
      await createTopic(admin, partitions, cluster.brokers.length);
      placedAt = await placement(admin);
    } finally {
      await admin.close();
    }
    log(`cluster up in ${cluster.dir} (${cluster.command.join(" ")}), ${sentinels.length} sentinel(s), topic ${TOPIC} ${partitions}x RF${REPLICAS}`);
    workload = new Workload({ sentinels, topic: TOPIC, partitions, maxRatePerSec: opts.maxRatePerSec ?? defaultTiming.maxRatePerSec });
    nemesis = new Nemesis(cluster, {
      seed: opts.seed,
      topic: TOPIC,
      kinds: opts.kinds ?? defaultKinds(cluster.brokers.length, REPLICAS),
      faultMsMin: opts.faultMsMin ?? defaultTiming.faultMsMin,
      faultMsMax: opts.faultMsMax ?? defaultTiming.faultMsMax,
      gapMsMin: opts.gapMsMin ?? defaultTiming.gapMsMin,
      gapMsMax: opts.gapMsMax ?? defaultTiming.gapMsMax,
    });
    workload.start();
    nemesis.start();
    const t0 = Date.now();
    let reported = 0;
    while (Date.now() - t0 < opts.durationMs) {
      await Bun.sleep(Math.min(1000, opts.durationMs - (Date.now() - t0)));
      if (Date.now() - reported >= (opts.progressEveryMs ?? 10_000)) {
        reported = Date.now();
        const per = new Array<number>(partitions).fill(0);
        for (const a of workload.acks) per[a.partition]!++;
        log(`t=${((Date.now() - t0) / 1000).toFixed(0)}s acks=${workload.acks.length} [${per}] failed=${workload.failed} faults=${nemesis.faultsInjected()}`);
      }
    }
    await nemesis.stop();
    cluster.healAll();
    // Liveness: once healed, the running producers must get every partition acknowledging again.
    const stuck = await workload.waitAcksOnEveryPartition(AFTER_HEAL_MS);
    for (const p of stuck) {
      problems.push(`faults/${p}: no acknowledgement within ${AFTER_HEAL_MS} ms after everything was healed`);
      for (const line of workload.senderStates(p)) log(`  faults/${p} ${line}`);
    }
    await workload.stop();
    log(`stopped: acks=${workload.acks.length} failed=${workload.failed}; checking`);
    check = await checkRun({
      sentinels,
      topic: TOPIC,
      partitions,
      replicas: REPLICAS,
      acks: workload.acks,
      sent: workload.sent,
      placement: new Map(
        ringPlacement(cluster.brokers.map((_, i) => i + 1), TOPIC, partitions, REPLICAS).map((set, p) => [p, set]),
      ),
    });
    const after = new Admin({ sentinels, sentinelTimeoutMs: 2000 });
    try {
      const now = await placement(after);
      replicasMoved = [...now].filter(([p, r]) => placedAt.get(p) !== r).length;
    } finally {
      await after.close();
    }
    problems.push(...check.problems);
    if (sentinels.length > 1) {
      const disagree = await sentinelsAgree(sentinels, SENTINELS_AGREE_MS);
      if (disagree) problems.push(`sentinels do not agree on a map leader ${SENTINELS_AGREE_MS} ms after healing: ${disagree}`);
    }
    if (workload.acks.length < minAcks) problems.push(`only ${workload.acks.length} acknowledgements, expected at least ${minAcks}`);
    if (nemesis.faultsInjected() < minFaults) problems.push(`only ${nemesis.faultsInjected()} faults, expected at least ${minFaults}`);
    // A tear the broker did not notice would mean the fault did not happen as intended (or recovery missed it).
    const tears = nemesis.history.filter((e) => e.kind === "torn-wal" && !e.detail.includes("no WAL record")).length;
    walCuts = cluster.brokers.reduce((n, b) => n + cluster.walCutsLogged(b), 0);
    if (walCuts < tears) problems.push(`${tears} WAL records torn, but broker logs report only ${walCuts} cuts at recovery`);
    // A disk fault no broker noticed would mean no write reached the frozen partition during its hold.
    const frozen = nemesis.history.filter((e) => e.kind === "disk-fault" && e.error === undefined && !e.detail.includes("no partition")).length;
    const stopped = cluster.brokers.reduce((n, b) => n + cluster.partitionFailuresLogged(b), 0);
    // With more brokers than replicas, replicas move (the sentinel replaces the ones that left, or whose
    // broker was down long enough), and a frozen directory may belong to one on its way out, which takes
    // no writes during the hold: then most, not all, of the frozen partitions must have noticed.
    const needStopped = cluster.brokers.length > REPLICAS ? Math.ceil(frozen / 2) : frozen;
    if (stopped < needStopped) problems.push(`${frozen} partitions made unwritable, but broker logs report only ${stopped} that stopped taking writes`);
    // The proxies must have told brokers apart (or partitions would cut nothing) and dropped something.
    framesDropped = cluster.net.framesDropped();
    dialers = cluster.net.dialers();
    const brokerLinks = Object.keys(dialers).filter((k) => /^b\d+>b\d+$/.test(k)).length;
    const n = cluster.brokers.length;
    if (brokerLinks < n * (n - 1)) problems.push(`proxies saw broker-to-broker connections on ${brokerLinks} of ${n * (n - 1)} links: ${JSON.stringify(dialers)}`);
    const drops = nemesis.history.filter((e) => e.kind === "partition" && e.detail.includes(" drop ")).length;
    if (drops > 0 && framesDropped === 0) problems.push(`${drops} dropping partitions, but the proxies dropped no frame`);
    const errs = nemesis.history.filter((e) => e.error);
    if (errs.length > 0) problems.push(`${errs.length} faults could not be applied`);
  } catch (e) {
    problems.push(`run failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
  } finally {
    await nemesis?.stop().catch(() => {});
    await workload?.stop().catch(() => {});
    if (problems.length > 0) {
      cluster.keepFiles();
      log(`data and logs kept in ${cluster.dir}`);
      for (const n of cluster.nodes()) log(`--- ${n.label} log tail\n${cluster.logTail(n, 15)}`);
    }
    await cluster.stop();
  }
  return {
    ok: problems.length === 0,
    seed: opts.seed,
    durationMs: opts.durationMs,
    sentinels: sentinels.length,
    brokers: cluster.brokers.length,
    replicasMoved,
    outageMoves: (nemesis?.history ?? []).reduce((n, e) => n + (e.moved ?? 0), 0),
    acks: workload?.acks.length ?? 0,
    sent: workload?.sent.size ?? 0,
    failedSends: workload?.failed ?? 0,
    faults: nemesis?.faultsInjected() ?? 0,
    faultKinds: [...(nemesis?.kindsInjected() ?? [])],
    sentinelKills: (nemesis?.history ?? [])
      .filter((e) => e.kind === "sentinel-kill" && e.error === undefined)
      .map((e) => `${e.target}${e.detail.replace(/^hold=\d+ms/, "")}`),
    records: check?.records ?? 0,
    convergedInMs: check?.convergedInMs ?? -1,
    walCuts,
    rereads: check?.rereads ?? [],
    framesDropped,
    dialers,
    problems,
    history: nemesis?.describe() ?? "",
    sendErrors: Object.fromEntries([...(workload?.errors ?? [])].map(([k, n]) => [k, `${n}x, e.g. ${workload?.errorExamples.get(k)}`])),
    dir: cluster.dir,
  };
}

/** The text a failing run prints: enough to replay it (seed) and to see what happened (history). */
export function failureText(r: RunReport): string {
  return [
    `fault run FAILED: seed=${r.seed} duration=${r.durationMs}ms sentinels=${r.sentinels} acks=${r.acks} faults=${r.faults}`,
    `replay: bun test/e2e/faults-cli.ts --duration ${Math.round(r.durationMs / 1000)} --seed ${r.seed}${r.sentinels > 1 ? ` --sentinels ${r.sentinels}` : ""}${r.brokers > 3 ? ` --brokers ${r.brokers}` : ""} --keep`,
    `problems:`,
    ...r.problems.slice(0, 40).map((p) => `  ${p}`),
    `nemesis history:`,
    r.history,
  ].join("\n");
}
