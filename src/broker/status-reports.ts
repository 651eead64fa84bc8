// What a broker's KeepAlive tells the sentinel about its partitions: everything (a full report), or only what
// changed since the last report the sentinel took (a delta; empty when nothing did). A status has two
// kinds of fields. Its shape (role, term, leader, membership, config, log start, left) is what clients and
// failover act on, and goes out with the next beat. Its counters (log end, commit, applied, match indexes)
// move on every busy partition between any two beats: reported every beat, a broker with 1,000 partitions
// under load encoded all 1,000 statuses five times a second (with the fingerprint that said they changed,
// a fifth of its CPU), so counters go out at most once per `countersEveryMs`, except for a group with
// learners, whose catch-up the sentinel waits on, beat by beat.
import type { PartitionStatus } from "../proto/goulette_pb";
import { Role } from "../raft/types";
import type { Partition } from "./partition";

/** The two halves of a status, as hashes: no strings, no objects (computed for every busy partition per beat). */
interface Hashes {
  shape: number;
  counters: number;
}

export interface StatusReport {
  /** Every partition (full), else only those whose status is due again: empty means "unchanged". */
  full: boolean;
  partitions: PartitionStatus[];
  /** The sentinel took this report: what it carried is the base of the next delta. */
  taken(): void;
}

export interface StatusReportsDeps {
  all(): Iterable<Partition>;
  /** Groups that are awake: a tick may change their status without anything else touching them. */
  awake(): Iterable<Partition>;
  status(p: Partition): PartitionStatus;
  countersEveryMs: number;
}

export class StatusReports {
  /** Per partition, what the sentinel holds (as of the last report it took). */
  private readonly sent = new Map<Partition, Hashes>();
  /** Partitions whose status may have changed since the last report was built. */
  private readonly touched = new Set<Partition>();
  /** Partitions whose counters moved but were not reported yet (not due). */
  private readonly countersBehind = new Set<Partition>();
  /** Bumped whenever a partition is added or removed: a delta cannot say a partition is gone. */
  private setVersion = 0;
  private sentSetVersion = -1;
  private countersSentAtMs = Number.NEGATIVE_INFINITY;

  constructor(private readonly deps: StatusReportsDeps) {}

  /** Something happened to this partition (a message, a proposal, a pump round, a config change). */
  touch(p: Partition): void {
    this.touched.add(p);
  }

  added(p: Partition): void {
    this.setVersion++;
    this.touched.add(p);
  }

  removed(p: Partition): void {
    this.setVersion++;
    this.sent.delete(p);
    this.touched.delete(p);
    this.countersBehind.delete(p);
  }

  /**
   * The report for this beat. `full` asks for every partition; so does a change of the partition set, and
   * any change at all when `deltas` is false (a sentinel that takes no deltas gets full or "unchanged").
   */
  report(opts: { full: boolean; deltas: boolean; nowMs: number }): StatusReport {
    const setVersion = this.setVersion;
    const countersDue = opts.nowMs - this.countersSentAtMs >= this.deps.countersEveryMs;
    let full = opts.full || setVersion !== this.sentSetVersion;
    let due = full ? [] : this.changed(countersDue);
    if (!full && due.length > 0 && !opts.deltas) full = true;
    if (full) due = [...this.deps.all()].filter((p) => !p.removed).map((p) => [p, hashes(p)] as const);
    this.touched.clear();
    const countersSent = full || countersDue;
    return {
      full,
      partitions: due.map(([p]) => this.deps.status(p)),
      taken: () => {
        if (full) {
          this.sent.clear();
          this.countersBehind.clear();
          this.sentSetVersion = setVersion;
        }
        for (const [p, h] of due) {
          if (p.removed) continue;
          this.sent.set(p, h);
          this.countersBehind.delete(p);
        }
        if (countersSent) this.countersSentAtMs = opts.nowMs;
      },
    };
  }

  /** The partitions whose status differs from what the sentinel holds and is due, with their hashes. */
  private changed(countersDue: boolean): (readonly [Partition, Hashes])[] {
    const out: (readonly [Partition, Hashes])[] = [];
    const seen = new Set<Partition>();
    const consider = (p: Partition) => {
      if (p.removed || seen.has(p)) return;
      seen.add(p);
      const h = hashes(p);
      const was = this.sent.get(p);
      if (was === undefined || was.shape !== h.shape) out.push([p, h]);
      else if (was.counters === h.counters) this.countersBehind.delete(p); // back where the sentinel has it
      else if (countersDue || p.node.conf.learners.length > 0) out.push([p, h]);
      else this.countersBehind.add(p);
    };
    for (const p of this.touched) consider(p);
    for (const p of this.deps.awake()) consider(p);
    if (countersDue) for (const p of this.countersBehind) consider(p);
    return out;
  }
}

const ROLE_CODE: Record<Role, number> = { [Role.Follower]: 1, [Role.PreCandidate]: 2, [Role.Candidate]: 3, [Role.Leader]: 4 };

function hashes(p: Partition): Hashes {
  const n = p.node;
  let h = 0x811c9dc5;
  const mix = (x: number) => {
    h = Math.imul(h ^ (x >>> 0), 0x01000193);
    h = Math.imul(h ^ Math.floor(x / 0x1_0000_0000), 0x01000193);
  };
  mix(p.id.group);
  mix(ROLE_CODE[n.role]);
  mix(n.term);
  mix(n.leader);
  mix(p.log.logStartOffset);
  for (const v of n.conf.voters) mix(v);
  mix(0xffff);
  for (const l of n.conf.learners) mix(l);
  mix(p.configHash);
  // PartitionStatus.left (the sentinel replaces such a replica): left, or failed with the broker's WAL.
  mix((p.left ? 1 : 0) | (p.failed !== undefined ? 2 : 0));
  const shape = h | 0;
  h = 0x811c9dc5;
  mix(p.log.nextOffset);
  mix(n.commitIndex);
  mix(p.appliedIndex);
  n.forEachMatch((id, match) => {
    mix(id);
    mix(match);
  });
  return { shape, counters: h | 0 };
}

/** A hash of a topic config, kept on the partition (Partition.configHash) so hashing a status reads no strings. */
export function configHash(config: Record<string, string> | undefined): number {
  return Bun.hash.crc32(JSON.stringify(Object.entries(config ?? {}).sort()));
}
