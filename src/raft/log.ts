// The node's log: a snapshot point, then the entries after it. Entries up to `persisted` are durable
// (the driver acknowledged them through advance()); those up to `inProgress` are handed to the driver and
// being written; the rest go out in the next ready. Readies may overlap (the driver writes the next while
// the previous one's fsync is in flight), so the two cursors move apart.
// The core keeps every entry after the last compaction in memory; drivers bound that by compacting
// once their state machine holds the applied prefix.
import { assert } from "./assert";
import type { Entry, SnapshotMeta } from "./types";

export class RaftLog {
  snapshot: SnapshotMeta;
  private entries: Entry[];
  committed: number;
  /** Highest index handed to the driver to apply and acknowledged by advance(). */
  applied: number;
  /** Highest index handed to the driver to apply (>= applied: readies not yet advanced hold the rest). */
  applying: number;
  persisted: number;
  /** Highest index handed to the driver to persist (>= persisted). */
  inProgress: number;
  /** A snapshot installed in memory and not yet handed to the driver. */
  pendingSnapshot: SnapshotMeta | undefined;

  constructor(snapshot: SnapshotMeta, entries: Entry[], committed: number, applied: number, persisted: number) {
    this.snapshot = snapshot;
    this.entries = entries;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i] as Entry;
      assert(e.index === snapshot.index + 1 + i, "log entries must be contiguous after the snapshot");
      assert(e.term >= (i === 0 ? snapshot.term : (entries[i - 1] as Entry).term), "log terms must not decrease");
    }
    this.committed = committed;
    this.applied = applied;
    this.applying = applied;
    this.persisted = persisted;
    this.inProgress = persisted;
    assert(snapshot.index <= applied && applied <= committed && committed <= this.lastIndex, "log positions out of order");
  }

  get firstIndex(): number {
    return this.snapshot.index + 1;
  }

  get lastIndex(): number {
    return this.snapshot.index + this.entries.length;
  }

  lastTerm(): number {
    const n = this.entries.length;
    return n === 0 ? this.snapshot.term : (this.entries[n - 1] as Entry).term;
  }

  /** The term at `index`, or undefined when compacted away or beyond the end. */
  term(index: number): number | undefined {
    if (index === this.snapshot.index) return this.snapshot.term;
    const e = this.entries[index - this.snapshot.index - 1];
    return e === undefined ? undefined : e.term;
  }

  entry(index: number): Entry | undefined {
    if (index <= this.snapshot.index) return undefined;
    return this.entries[index - this.snapshot.index - 1];
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Raft §5.4.1: a candidate's log is at least as up to date as ours. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ours = this.lastTerm();
    return lastTerm > ours || (lastTerm === ours && lastIndex >= this.lastIndex);
  }

  /**
   * Accept `entries` following (prevIndex, prevTerm). Returns the last index known to match the
   * leader, or -1 when the consistency check fails. Entries already present are not rewritten, so a
   * stale or duplicated Append never truncates anything.
   */
  tryAppend(prevIndex: number, prevTerm: number, entries: readonly Entry[]): number {
    if (!this.matchTerm(prevIndex, prevTerm)) return -1;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i] as Entry;
      if (!this.matchTerm(e.index, e.term)) {
        assert(e.index > this.committed, () => `conflict at ${e.index} would overwrite committed ${this.committed}`);
        this.append(entries.slice(i));
        break;
      }
    }
    return prevIndex + entries.length;
  }

  /** Append, replacing every entry at or after entries[0].index. */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = (entries[0] as Entry).index;
    assert(first > this.committed, () => `append at ${first} would overwrite committed ${this.committed}`);
    assert(first <= this.lastIndex + 1, () => `append at ${first} leaves a gap after ${this.lastIndex}`);
    const keep = first - this.firstIndex;
    if (keep < this.entries.length) this.entries.length = keep;
    let prevTerm = this.term(first - 1) ?? 0;
    for (const e of entries) {
      assert(e.index === this.lastIndex + 1, "appended entries must be contiguous");
      assert(e.term >= prevTerm, "appended terms must not decrease");
      prevTerm = e.term;
      this.entries.push(e);
    }
    if (this.persisted > first - 1) this.persisted = first - 1;
    if (this.inProgress > first - 1) this.inProgress = first - 1;
  }

  commitTo(index: number): void {
    if (index <= this.committed) return;
    assert(index <= this.lastIndex, () => `commit ${index} beyond last index ${this.lastIndex}`);
    this.committed = index;
  }

  /** Entries in [lo, hi), at most maxBytes of payload but always at least one. */
  slice(lo: number, hi: number, maxBytes: number): Entry[] {
    assert(lo >= this.firstIndex, () => `slice from ${lo} below first index ${this.firstIndex}`);
    assert(hi <= this.lastIndex + 1, "slice beyond the end");
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.entries[i - this.snapshot.index - 1] as Entry;
      bytes += e.data.length;
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  /** The entries not yet handed to the driver; from now on they are in progress. */
  takeEntriesToWrite(): Entry[] {
    const out = this.entries.slice(this.inProgress - this.snapshot.index);
    this.inProgress = this.lastIndex;
    return out;
  }

  hasEntriesToWrite(): boolean {
    return this.inProgress < this.lastIndex;
  }

  /** The committed entries not yet handed to the driver to apply; from now on they are being applied. */
  takeEntriesToApply(): Entry[] {
    if (this.committed <= this.applying) return [];
    const out = this.slice(this.applying + 1, this.committed + 1, Infinity);
    this.applying = this.committed;
    return out;
  }

  /** The driver made entries up to (index, term) durable; ignored when they were replaced since. */
  stableTo(index: number, term: number): void {
    if (index > this.persisted && this.matchTerm(index, term)) this.persisted = index;
  }

  /** The largest index <= `index` whose term is <= `term` (fast backtracking), and its term. */
  findConflictByTerm(index: number, term: number): [number, number] {
    for (let i = Math.min(index, this.lastIndex); ; i--) {
      const t = this.term(i);
      if (t === undefined) return [i, 0];
      if (t <= term) return [i, t];
    }
  }

  /** Drop entries <= snap.index; the driver's state machine holds them. */
  compact(snap: SnapshotMeta): void {
    assert(snap.index <= this.applied, "compacting beyond the applied index");
    assert(snap.index <= this.persisted, "compacting beyond the persisted index");
    if (snap.index <= this.snapshot.index) return;
    assert(this.term(snap.index) === snap.term, "snapshot term does not match the log");
    this.entries = this.entries.slice(snap.index - this.snapshot.index);
    this.snapshot = snap;
  }

  /** Replace the whole log by a snapshot received from the leader. */
  restore(snap: SnapshotMeta): void {
    assert(snap.index > this.committed, "restoring a snapshot behind the commit index");
    this.entries = [];
    this.snapshot = snap;
    this.committed = snap.index;
    this.applied = snap.index;
    this.applying = snap.index;
    this.persisted = snap.index;
    this.inProgress = snap.index;
    this.pendingSnapshot = snap;
  }
}
