// Injects one fault at a time, always into a minority (one broker of three, or one sentinel: the only one,
// or one of three), chosen and timed by a seeded PRNG, and records what it did so a failing run can be
// replayed and explained.
import { Admin } from "../../src/client/index";
import { Prng } from "../../src/raft/prng";
import type { Cluster, Node } from "./harness";

export type FaultKind =
  | "kill9" // kill -9 a broker, restart it later with its data
  | "pause" // SIGSTOP a broker, SIGCONT later
  | "partition" // drop or stall frames between one broker and the others, one way or both
  | "sentinel-kill" // kill -9 a sentinel (the only one, or one of three), restart it later with its data
  | "torn-wal" // kill -9 a broker, tear its newest WAL record, restart it
  | "damaged-segment" // kill -9 a broker, flip a byte in / cut short / delete one sealed partition segment, restart it
  | "disk-fault" // make one partition's files on a broker unwritable while it runs; mend them, restart it
  | "outage"; // kill -9 a broker, keep it down until the sentinel has moved its replicas away, restart it

export const ALL_FAULTS: readonly FaultKind[] = ["kill9", "pause", "partition", "sentinel-kill", "torn-wal", "damaged-segment", "disk-fault"];

/**
 * The kinds a run draws from by default: all of the above, and outages where a broker is free to take the
 * replicas of one that is down (more brokers than replicas).
 */
export function defaultKinds(brokers: number, replicas: number): readonly FaultKind[] {
  return brokers > replicas ? [...ALL_FAULTS, "outage"] : ALL_FAULTS;
}

/** How long an outage waits for the sentinel to move every replica off the broker before it gives up. */
export const OUTAGE_MAX_MS = 30_000;

export interface FaultEvent {
  kind: FaultKind;
  target: string;
  detail: string;
  startMs: number; // since the nemesis started
  healMs?: number;
  error?: string;
  /** Outage: how many partitions the sentinel moved off the broker while it was down. */
  moved?: number;
}

export interface NemesisOptions {
  seed: number;
  /** The topic whose placement an outage watches. */
  topic: string;
  kinds: readonly FaultKind[];
  faultMsMin?: number;
  faultMsMax?: number;
  /** Quiet time between one fault's heal and the next fault. */
  gapMsMin?: number;
  gapMsMax?: number;
}

export class Nemesis {
  readonly history: FaultEvent[] = [];
  private readonly rng: Prng;
  private running = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private t0 = 0;

  constructor(
    private readonly cluster: Cluster,
    private readonly opts: NemesisOptions,
  ) {
    this.rng = new Prng(opts.seed);
  }

  start(): void {
    if (this.running) throw new Error("nemesis already running");
    this.running = true;
    this.t0 = Date.now();
    this.loop = this.run();
  }

  /** Stops after healing the fault in progress. */
  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loop;
  }

  faultsInjected(): number {
    return this.history.filter((e) => e.error === undefined).length;
  }

  kindsInjected(): Set<FaultKind> {
    return new Set(this.history.filter((e) => e.error === undefined).map((e) => e.kind));
  }

  describe(): string {
    return this.history
      .map((e) => `  ${(e.startMs / 1000).toFixed(2)}s..${e.healMs === undefined ? "?" : (e.healMs / 1000).toFixed(2) + "s"} ${e.kind} ${e.target} ${e.detail}${e.error ? ` ERROR ${e.error}` : ""}`)
      .join("\n");
  }

  private between(lo: number, hi: number): number {
    return lo + this.rng.int(Math.max(1, hi - lo + 1));
  }

  /** Sleeps, but returns early when stop() is called. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      let t: ReturnType<typeof setTimeout> | undefined;
      const done = () => {
        clearTimeout(t);
        this.wake = undefined;
        resolve();
      };
      t = setTimeout(done, ms);
      this.wake = done;
    });
  }

  private async run(): Promise<void> {
    const kinds = this.opts.kinds;
    const { faultMsMin = 1000, faultMsMax = 3000, gapMsMin = 500, gapMsMax = 1500 } = this.opts;
    const c = this.cluster;
    // Every fault kind comes up once (in a seeded order) before any repeats, so a short run covers them all.
    let deck: FaultKind[] = [];
    // An outage takes longest (it waits for the sentinel), so where there is one it comes first: however
    // short the run, the sentinel moves replicas in it. Only runs that draw outages change their schedule.
    if (kinds.includes("outage")) deck = [...this.shuffle(kinds.filter((k) => k !== "outage")), "outage"];
    await this.sleep(this.between(gapMsMin, gapMsMax));
    while (this.running) {
      if (deck.length === 0) deck = this.shuffle([...kinds]);
      const kind = deck.pop()!;
      const b = c.brokers[this.rng.int(c.brokers.length)]!;
      const others = c.brokers.filter((x) => x !== b).map((x) => x.label);
      const holdMs = this.between(faultMsMin, faultMsMax);
      const ev: FaultEvent = { kind, target: b.label, detail: `hold=${holdMs}ms`, startMs: Date.now() - this.t0 };
      this.history.push(ev);
      let sentinel: Node | undefined;
      if (kind === "sentinel-kill") {
        const pick = await this.pickSentinel();
        sentinel = pick.node;
        ev.target = sentinel.label;
        if (pick.why) ev.detail += ` ${pick.why}`;
      }
      try {
        switch (kind) {
          case "kill9":
            await c.kill9(b);
            await this.sleep(holdMs);
            c.start(b);
            break;
          case "pause":
            c.pause(b);
            await this.sleep(holdMs);
            c.resume(b);
            break;
          case "partition": {
            const mode = this.rng.int(3) === 0 ? "stall" : "drop";
            const way = (["both", "in", "out"] as const)[this.rng.int(3)]!;
            ev.detail += ` ${mode} ${way} (others ${others.join(",")})`;
            c.net.isolate(b.label, others, mode, way);
            await this.sleep(holdMs);
            c.net.healAll();
            break;
          }
          case "sentinel-kill":
            await c.kill9(sentinel!);
            await this.sleep(holdMs);
            c.start(sentinel!);
            break;
          case "damaged-segment": {
            const how = (["flip", "cut", "delete"] as const)[this.rng.int(3)]!;
            const r = await c.restartWithDamagedSegment(b, how, () => this.rng.float());
            ev.detail += r ? ` ${how} ${r.file}${r.at !== undefined ? ` at ${r.at} of ${r.size}B` : ""}` : ` ${how}: no sealed segment yet`;
            break;
          }
          case "disk-fault": {
            // The replica's partition stops taking writes: a leader hands over, a follower leaves the group
            // (its WAL records dropped). Then the disk is mended and the broker restarted, as an operator
            // would: the replica rejoins, voting only for logs that reach what it dropped until its commit does.
            const f = c.freezePartition(b, () => this.rng.float());
            if (!f) {
              ev.detail += " (no partition yet)";
              break;
            }
            ev.detail += ` ${f.dir}`;
            try {
              await this.sleep(holdMs);
            } finally {
              f.undo();
            }
            await c.restart(b);
            break;
          }
          case "outage": {
            // The drawn broker, unless the map places nothing on it (placement on a small ring is uneven):
            // then the one holding the most partitions, so the outage always has replicas to move.
            const on = await this.partitionsByBroker();
            const most = c.brokers.reduce((m, x) => ((on.get(brokerId(x.label))?.length ?? 0) > (on.get(brokerId(m.label))?.length ?? 0) ? x : m));
            const target = (on.get(brokerId(b.label))?.length ?? 0) > 0 ? b : most;
            const id = brokerId(target.label);
            const held = on.get(id) ?? [];
            ev.target = target.label;
            await c.kill9(target);
            try {
              const left = await this.untilMovedOff(id, held);
              ev.moved = held.filter((p) => !left.includes(p)).length;
              ev.detail += ` partitions ${held.join(",") || "none"}; moved ${ev.moved}`;
              if (left.length > 0 && this.running) throw new Error(`the sentinel did not move partitions ${left.join(",")} off ${target.label} within ${OUTAGE_MAX_MS} ms`);
            } finally {
              c.start(target);
            }
            break;
          }
          case "torn-wal": {
            const cut = 1 + this.rng.int(8);
            const r = await c.restartWithTornWal(b, cut);
            if (!r) ev.detail += " (no WAL record to tear)";
            else if (r.cutBytes === 0) ev.detail += ` (no WAL record to tear: record at ${r.recordAt} still torn, not recovered yet)`;
            else ev.detail += ` cut=${r.cutBytes}B of record type ${r.recordType} (${r.recordBytes}B at ${r.recordAt})`;
            break;
          }
        }
      } catch (e) {
        ev.error = e instanceof Error ? e.message : String(e);
        c.healAll();
      }
      ev.healMs = Date.now() - this.t0;
      if (!this.running) break;
      await this.sleep(this.between(gapMsMin, gapMsMax));
    }
  }

  /**
   * Which sentinel to kill. Of three, half the time the map leader (the interesting case: brokers and
   * clients must find the one elected next), else one drawn at random. Draws the same PRNG numbers whatever
   * the answer, so the rest of the schedule does not depend on who led; one sentinel draws nothing, as
   * before three existed, so older seeds keep their schedules.
   */
  private async pickSentinel(): Promise<{ node: Node; why?: string }> {
    const all = this.cluster.sentinels;
    if (all.length === 1) return { node: all[0]! };
    const wantLeader = this.rng.int(2) === 0;
    const drawn = all[this.rng.int(all.length)]!;
    if (!wantLeader) return { node: drawn, why: "(random)" };
    const leader = await this.mapLeader();
    const node = leader === undefined ? undefined : all[leader - 1];
    return node ? { node, why: "(map leader)" } : { node: drawn, why: "(random: map leader unknown)" };
  }

  /** The partitions of the topic the map places on each broker (throws when no sentinel answers soon). */
  private async partitionsByBroker(): Promise<Map<number, number[]>> {
    const admin = new Admin({ sentinels: this.cluster.sentinelAddresses, sentinelTimeoutMs: 1000 });
    try {
      const t = await admin.describeTopic(this.opts.topic);
      const on = new Map<number, number[]>();
      for (const p of t.partitionInfo) for (const r of p.replicas) on.set(r, [...(on.get(r) ?? []), p.partition]);
      return on;
    } finally {
      await admin.close().catch(() => {});
    }
  }

  /**
   * Waits until the map places no partition on the broker, OUTAGE_MAX_MS at most (or until stop() is
   * called); returns the partitions still placed on it when last asked. A sentinel that does not answer (one was killed
   * just before, and the others are electing) is asked again.
   */
  private async untilMovedOff(id: number, held: number[]): Promise<number[]> {
    const deadline = Date.now() + OUTAGE_MAX_MS;
    let left = held;
    for (;;) {
      try {
        left = (await this.partitionsByBroker()).get(id) ?? [];
        if (left.length === 0) return left;
      } catch {
        // asked again below
      }
      if (Date.now() >= deadline || !this.running) return left;
      await this.sleep(200);
    }
  }

  /** The map leader's id as the sentinels tell it (cluster status), or undefined when none answers soon. */
  private async mapLeader(): Promise<number | undefined> {
    const admin = new Admin({ sentinels: this.cluster.sentinelAddresses, sentinelTimeoutMs: 1000 });
    try {
      return (await admin.clusterStatus()).sentinels.find((s) => s.leader)?.id;
    } catch {
      return undefined;
    } finally {
      await admin.close().catch(() => {});
    }
  }

  private shuffle<T>(xs: T[]): T[] {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = this.rng.int(i + 1);
      [xs[i], xs[j]] = [xs[j]!, xs[i]!];
    }
    return xs;
  }
}

/** A broker's id from its label ("b2" -> 2), as the harness starts it (`--id`). */
function brokerId(label: string): number {
  const m = /^b(\d+)$/.exec(label);
  if (!m) throw new Error(`not a broker label: ${label}`);
  return Number(m[1]);
}
