import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { silentLogger } from "../../src/log";
import { RaftMapStore } from "../../src/sentinel/raft-map-store";
import { encodeCommand, type MapCommand } from "../../src/sentinel/cluster-map";
import { bootstrapEntries } from "../../src/raft/raft";
import { EntryType } from "../../src/raft/types";
import { Wal } from "../../src/storage/wal";
import { tearNewestWalRecord } from "../storage/helpers";

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "goulette-raftmap-"));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const reg = (id: number): MapCommand => ({ type: "register-broker", id, address: `h:${id}`, fsyncPolicy: "always", version: "", capacity: 0 });
const open = (dir: string, snapshotEveryEntries?: number) =>
  RaftMapStore.open({ dir, fsync: "always", id: 1, voters: [1], electionTicks: 10, heartbeatTicks: 1, log: silentLogger, snapshotEveryEntries });

describe("RaftMapStore (one voter)", () => {
  test("leads at once; a reopened store has every acknowledged command", async () => {
    const dir = tempDir();
    const a = await open(dir);
    expect(await a.waitLeader(1_000)).toBe(true);
    await Promise.all([reg(1), reg(2), reg(3)].map((c) => a.propose(c)));
    expect((await a.propose({ type: "create-topic", name: "t", replicationFactor: 3, config: {}, placement: [[1, 2, 3]] })).ok).toBe(true);
    const refused = await a.propose({ type: "create-topic", name: "t", replicationFactor: 3, config: {}, placement: [[1, 2, 3]] });
    expect(refused).toMatchObject({ ok: false, code: "TOPIC_EXISTS" });
    const pid = await a.propose({ type: "next-producer-id" });
    const before = a.map.snapshot();
    await a.close();

    const b = await open(dir);
    expect(b.map.snapshot()).toEqual(before);
    expect(await b.waitLeader(1_000)).toBe(true);
    const next = await b.propose({ type: "next-producer-id" });
    expect(pid.ok && next.ok && next.producerId! > pid.producerId!).toBe(true);
    await b.close();
  });

  test("map snapshots compact the log and recovery still sees everything", async () => {
    const dir = tempDir();
    const a = await open(dir, 4);
    await a.waitLeader(1_000);
    for (let i = 1; i <= 11; i++) await a.propose(reg(i));
    expect(a.node.firstIndex).toBeGreaterThan(1); // entries were compacted away
    await a.close();
    const b = await open(dir, 4);
    expect(b.map.allBrokers().map((x) => x.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    await b.waitLeader(1_000);
    await b.propose(reg(12));
    await b.close();
    const c = await open(dir, 4);
    expect(c.map.allBrokers().length).toBe(12);
    await c.close();
  });

  test("ticks arriving while a write is in flight keep the store serving", async () => {
    const a = await open(tempDir());
    await a.waitLeader(1_000);
    for (let i = 1; i <= 20; i++) {
      const done = a.propose(reg(i));
      // the driver's timer fires while the proposal's fsync is in flight, with nothing for Raft to do
      for (let k = 0; k < 3; k++) {
        await Promise.resolve();
        a.tick();
      }
      expect((await done).ok).toBe(true);
      a.tick();
    }
    expect(a.map.allBrokers().length).toBe(20);
    await a.close();
  });
});

describe("RaftMapStore after losing its newest WAL record", () => {
  /** A map WAL of `voters` whose last entry (term 3, the second command) was written, then lost to a cut tail. */
  async function tornMapWal(dir: string, voters: number[]): Promise<{ term: number; index: number }> {
    const walDir = join(dir, "map-wal");
    const wal = await Wal.open({ dir: walDir, fsync: "always", segmentBytes: 1024 * 1024 });
    const boot = bootstrapEntries(voters, []);
    const commands = [reg(1), reg(2)].map((c, i) => ({ term: 3, index: boot.length + 1 + i, type: EntryType.Normal, data: encodeCommand(c) }));
    wal.setHardState(1, { term: 3, vote: 1, commit: boot.length });
    wal.appendEntries(1, [...boot, ...commands]);
    await wal.sync();
    await wal.close();
    tearNewestWalRecord(walDir, 3);
    return { term: 3, index: commands.at(-1)!.index };
  }
  const openOf = (dir: string, voters: number[]) =>
    RaftMapStore.open({ dir, fsync: "always", id: 1, voters, electionTicks: 10, heartbeatTicks: 1, send: () => {}, log: silentLogger });

  test("one of three keeps a vote floor for it, across restarts, in its own file", async () => {
    const dir = tempDir();
    const lost = await tornMapWal(dir, [1, 2, 3]);
    const a = await openOf(dir, [1, 2, 3]);
    expect(a.node.voteFloor).toEqual(lost);
    expect(a.node.lastIndex).toBe(lost.index - 1);
    await a.close();
    expect(existsSync(join(dir, "map-vote-floor.json"))).toBe(true);
    const b = await openOf(dir, [1, 2, 3]);
    expect(b.node.voteFloor).toEqual(lost);
    await b.close();
  });

  test("one of three whose newest record was a vote restarts in that term having voted, durably", async () => {
    const dir = tempDir();
    const walDir = join(dir, "map-wal");
    const wal = await Wal.open({ dir: walDir, fsync: "always", segmentBytes: 1024 * 1024 });
    wal.setHardState(1, { term: 3, vote: 1, commit: 0 });
    wal.appendEntries(1, bootstrapEntries([1, 2, 3], []).map((e) => ({ ...e, term: 3 })));
    await wal.sync();
    wal.setHardState(1, { term: 5, vote: 2, commit: 0 }); // granted to sentinel 2, then lost
    await wal.sync();
    await wal.close();
    expect(tearNewestWalRecord(walDir, 4).type).toBe(2); // the vote never reached the disk
    const a = await openOf(dir, [1, 2, 3]);
    expect([a.node.term, a.node.vote]).toEqual([5, 1]);
    await a.close();
    const b = await openOf(dir, [1, 2, 3]); // the WAL now holds it whole
    expect([b.node.term, b.node.vote]).toEqual([5, 1]);
    await b.close();
  });

  test("a sentinel alone settles it at once and leads", async () => {
    const dir = tempDir();
    await tornMapWal(dir, [1]);
    const a = await openOf(dir, [1]);
    expect(a.node.voteFloor).toBeUndefined();
    expect(existsSync(join(dir, "map-vote-floor.json"))).toBe(false);
    expect(await a.waitLeader(1_000)).toBe(true);
    expect(a.map.allBrokers().map((b) => b.id)).toEqual([1]);
    await a.close();
  });
});
