import { afterEach, describe, expect, test } from "bun:test";
import { appendFileSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileMapStore } from "../../src/sentinel/map-store";
import type { MapCommand } from "../../src/sentinel/cluster-map";

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "goulette-map-"));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const reg = (id: number): MapCommand => ({ type: "register-broker", id, address: `h:${id}`, fsyncPolicy: "always", version: "", capacity: 0 });

describe("FileMapStore", () => {
  test("a reopened store has every acknowledged command, and ids keep growing", async () => {
    const dir = tempDir();
    const a = await FileMapStore.open({ dir, fsync: true });
    await Promise.all([reg(1), reg(2), reg(3)].map((c) => a.propose(c)));
    const created = await a.propose({ type: "create-topic", name: "t", replicationFactor: 3, config: {}, placement: [[1, 2, 3]] });
    expect(created.ok).toBe(true);
    expect((await a.propose({ type: "create-topic", name: "t", replicationFactor: 3, config: {}, placement: [[1, 2, 3]] })).ok).toBe(false);
    const pid = await a.propose({ type: "next-producer-id" });
    await a.close();

    const b = await FileMapStore.open({ dir, fsync: true });
    expect(b.map.snapshot()).toEqual(a.map.snapshot());
    const next = await b.propose({ type: "next-producer-id" });
    expect(pid.ok && next.ok && next.producerId! > pid.producerId!).toBe(true);
    await b.close();
  });

  test("snapshots cut the log and recovery still sees everything", async () => {
    const dir = tempDir();
    const a = await FileMapStore.open({ dir, fsync: false, snapshotEveryRecords: 5 });
    for (let i = 1; i <= 12; i++) await a.propose(reg(i));
    expect(statSync(join(dir, "map.snapshot")).size).toBeGreaterThan(0);
    await a.close();
    const b = await FileMapStore.open({ dir, fsync: false, snapshotEveryRecords: 5 });
    expect(b.map.allBrokers().map((x) => x.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    await b.close();
  });

  test("a torn tail is cut off on recovery", async () => {
    const dir = tempDir();
    const a = await FileMapStore.open({ dir, fsync: false });
    await a.propose(reg(1));
    await a.close();
    appendFileSync(join(dir, "map.log"), new Uint8Array([0, 0, 0, 40, 1, 2, 3])); // header promising more bytes
    const b = await FileMapStore.open({ dir, fsync: false });
    expect(b.map.allBrokers().length).toBe(1);
    await b.propose(reg(2));
    await b.close();
    const c = await FileMapStore.open({ dir, fsync: false });
    expect(c.map.allBrokers().map((x) => x.id)).toEqual([1, 2]);
    await c.close();
  });
});
