// After a run: waits until every replica of every partition holds the same committed log, reads each log
// whole from the leader and from each follower (direct Fetch to each broker), and through the client's
// Consumer, then checks what the workload was promised.
import { create } from "@bufbuild/protobuf";
import { Admin, Consumer, type PartitionInfo } from "../../src/client/index";
import { decodeRecords } from "../../src/client/records";
import { FetchRequestSchema, ReadFrom } from "../../src/proto/goulette_pb";
import { readBatchHeader, splitBatches } from "../../src/wire/batch";
import { ClientPool, expectCase } from "../../src/wire/index";
import { replicaSet } from "../ring-placement";
import type { Ack } from "./workload";

const FETCH_MAX_BYTES = 1024 * 1024;
const CALL_TIMEOUT_MS = 3000;
const READ_ATTEMPTS_MAX = 5;
/** How long the check waits for replicas to repair damage its reads found, and how often it looks. */
const DAMAGE_REPAIR_WAIT_MS = 60_000;
const DAMAGE_REPAIR_POLL_MS = 100;
const dec = new TextDecoder();

export interface ReplicaLog {
  broker: number;
  role: "leader" | "follower";
  highWatermark: number;
  offsets: number[];
  values: string[];
  /**
   * crc32 of each whole batch read, headers included: replicas hold byte-identical batches (offsets and raft
   * indexes are stamped alike everywhere), so a header damaged where no record shows it differs here.
   */
  batchCrcs?: number[];
}

export interface CheckInput {
  sentinels: string[];
  topic: string;
  partitions: number;
  replicas: number;
  acks: readonly Ack[];
  sent: ReadonlySet<string>;
  convergeWithinMs?: number;
  /**
   * Where each partition must end (its voters as replicaSet text): the sentinels move replicas back
   * to their ring placement, and the reads wait until they have, so no move runs under them.
   */
  placement?: ReadonlyMap<number, string>;
}

export interface CheckResult {
  problems: string[];
  logs: Map<number, ReplicaLog[]>; // per partition, leader first
  records: number; // in the leaders' logs
  convergedInMs: number;
  /** Why reads after convergence had to start over (leadership moved meanwhile). */
  rereads: string[];
}

/** Fetches [from, until) of one partition from one broker. */
async function readReplica(pool: ClientPool, address: string, topic: string, partition: number, readFrom: ReadFrom, untilOffset: number) {
  const offsets: number[] = [];
  const values: string[] = [];
  const batchCrcs: number[] = [];
  let at = 0;
  let hw = 0;
  while (at < untilOffset) {
    const res = await pool.get(address).call(
      {
        case: "fetch",
        value: create(FetchRequestSchema, { topic, partition, offset: BigInt(at), maxBytes: FETCH_MAX_BYTES, maxWaitMs: 0, readFrom }),
      },
      { timeoutMs: CALL_TIMEOUT_MS },
    );
    const r = expectCase(res, "fetchResponse");
    hw = Number(r.highWatermark);
    const limit = Math.min(hw, untilOffset);
    for (const b of splitBatches(r.records)) {
      const h = readBatchHeader(b);
      if (h.baseOffset >= at && h.baseOffset + h.recordCount <= limit) batchCrcs.push(Bun.hash.crc32(b));
    }
    const recs = decodeRecords(r.records).filter((d) => d.offset >= at && d.offset < limit);
    if (recs.length === 0) {
      const next = Number(r.nextOffset);
      if (next <= at) throw new Error(`fetch at ${at} from ${address} made no progress (hw ${hw})`);
      at = next;
      continue;
    }
    for (const d of recs) {
      offsets.push(d.offset);
      values.push(dec.decode(d.value));
    }
    at = recs[recs.length - 1]!.offset + 1;
  }
  return { offsets, values, batchCrcs, hw };
}

async function highWatermark(pool: ClientPool, address: string, topic: string, partition: number): Promise<number> {
  const res = await pool.get(address).call(
    { case: "fetch", value: create(FetchRequestSchema, { topic, partition, offset: 0n, maxBytes: 1, maxWaitMs: 0, readFrom: ReadFrom.FOLLOWER }) },
    { timeoutMs: CALL_TIMEOUT_MS },
  );
  return Number(expectCase(res, "fetchResponse").highWatermark);
}

/**
 * Polls until each partition has a leader, `replicas` voters (where `placement` says, and no learner), and
 * every voter reports the same high watermark, at or past every acknowledged offset, twice in a row.
 * Throws with the last state if not.
 */
async function converge(admin: Admin, pool: ClientPool, input: CheckInput): Promise<{ infos: PartitionInfo[]; hws: Map<number, number>; addresses: Map<number, string> }> {
  const deadline = Date.now() + (input.convergeWithinMs ?? 30_000);
  const ackedEnd = new Map<number, number>();
  for (const a of input.acks) ackedEnd.set(a.partition, Math.max(ackedEnd.get(a.partition) ?? 0, a.offset + 1));
  let previous = "";
  let last = "not polled";
  for (;;) {
    try {
      const meta = await admin.metadata([input.topic]);
      const addresses = new Map(meta.brokers.map((b) => [b.id, b.address]));
      const t = meta.topics.find((x) => x.name === input.topic);
      if (!t) throw new Error(`topic ${input.topic} missing from metadata`);
      const hws = new Map<number, number>();
      const states: string[] = [];
      let ready = t.partitionInfo.length === input.partitions;
      for (const p of t.partitionInfo) {
        const reported: number[] = [];
        for (const id of p.replicas) {
          const addr = addresses.get(id);
          reported.push(addr ? await highWatermark(pool, addr, input.topic, p.partition).catch(() => -1) : -1);
        }
        const hw = reported[0] ?? -1;
        const same = reported.every((x) => x === hw) && hw >= 0;
        const leaderOk = p.leader !== 0 && p.replicas.includes(p.leader);
        const placed = input.placement === undefined || replicaSet(p.replicas) === input.placement.get(p.partition);
        const settled = placed && p.learners.length === 0;
        if (!(same && leaderOk && settled && p.replicas.length === input.replicas && hw >= (ackedEnd.get(p.partition) ?? 0))) ready = false;
        hws.set(p.partition, hw);
        states.push(`p${p.partition} leader=${p.leader} replicas=[${p.replicas}] learners=[${p.learners}] hw=[${reported}] acked-end=${ackedEnd.get(p.partition) ?? 0}`);
      }
      last = states.join("; ");
      if (ready && last === previous) return { infos: t.partitionInfo, hws, addresses };
      previous = ready ? last : "";
    } catch (e) {
      last = `error: ${e instanceof Error ? e.message : String(e)}`;
      previous = "";
    }
    if (Date.now() > deadline) throw new Error(`no convergence within ${input.convergeWithinMs ?? 30_000} ms: ${last}`);
    await Bun.sleep(250);
  }
}

/** Reads everything with the client library's Consumer until it has caught up with `until` per partition. */
async function readWithConsumer(input: CheckInput, readFrom: "leader" | "follower", until: Map<number, number>): Promise<Map<number, { offset: number; value: string }[]>> {
  const c = new Consumer({ sentinels: input.sentinels, readFrom, maxWaitMs: 100, autoCommit: false });
  const out = new Map<number, { offset: number; value: string }[]>();
  for (let p = 0; p < input.partitions; p++) out.set(p, []);
  try {
    await c.assignTopic(input.topic, "beginning");
    const deadline = Date.now() + 20_000;
    const done = () => [...until].every(([p, end]) => (out.get(p)!.at(-1)?.offset ?? -1) + 1 >= end);
    while (!done() && Date.now() < deadline) {
      for (const m of await c.poll(200)) out.get(m.partition)!.push({ offset: m.offset, value: dec.decode(m.value) });
    }
  } finally {
    await c.close();
  }
  return out;
}

/**
 * The promises, checked on logs read after convergence (per partition, leader first): offsets strictly
 * increase; every value was written and appears once; every acknowledgement is at its offset; every
 * follower holds exactly the leader's log. Returns one line per problem found.
 */
export function checkLogs(logs: ReadonlyMap<number, readonly ReplicaLog[]>, acks: readonly Ack[], sent: ReadonlySet<string>): string[] {
  const problems: string[] = [];
  const seen = new Map<string, string>(); // value -> "p/offset" of its first appearance
  const at = new Map<string, string>(); // "p/offset" -> value, in the leaders' logs
  for (const [partition, list] of logs) {
    const leader = list[0]!;
    for (let i = 0; i < leader.offsets.length; i++) {
      const off = leader.offsets[i]!;
      const v = leader.values[i]!;
      if (i > 0 && off <= leader.offsets[i - 1]!) problems.push(`p${partition}: offset ${off} after ${leader.offsets[i - 1]} (not strictly increasing)`);
      if (!sent.has(v)) problems.push(`p${partition}@${off}: value "${v}" was never written`);
      const first = seen.get(v);
      if (first !== undefined) problems.push(`value "${v}" appears twice: ${first} and p${partition}/${off}`);
      else seen.set(v, `p${partition}/${off}`);
      at.set(`${partition}/${off}`, v);
    }
    for (const f of list.slice(1)) {
      const same = f.offsets.length === leader.offsets.length && f.offsets.every((o, i) => o === leader.offsets[i] && f.values[i] === leader.values[i]);
      if (!same) {
        let i = 0;
        while (i < f.offsets.length && i < leader.offsets.length && f.offsets[i] === leader.offsets[i] && f.values[i] === leader.values[i]) i++;
        problems.push(
          `p${partition}: broker ${f.broker} differs from leader ${leader.broker} at record #${i}: ` +
            `leader ${leader.offsets[i]}=${leader.values[i]}, follower ${f.offsets[i]}=${f.values[i]} ` +
            `(lengths ${leader.offsets.length} vs ${f.offsets.length})`,
        );
      } else if (leader.batchCrcs && f.batchCrcs) {
        const lb = leader.batchCrcs;
        const fb = f.batchCrcs;
        let i = 0;
        while (i < lb.length && i < fb.length && lb[i] === fb[i]) i++;
        if (i < lb.length || i < fb.length) {
          problems.push(`p${partition}: broker ${f.broker} holds the leader's records but not its bytes: batch #${i} of ${lb.length} differs (a header)`);
        }
      }
    }
  }
  let lost = 0;
  for (const a of acks) {
    const v = at.get(`${a.partition}/${a.offset}`);
    if (v === a.value) continue;
    lost++;
    if (lost <= 20) problems.push(`ack p${a.partition}/${a.offset}=${a.value} not found there (found ${v ?? "nothing"}; value is at ${seen.get(a.value) ?? "no offset"})`);
  }
  if (lost > 20) problems.push(`... ${lost} acknowledged values in all not at their acknowledged offset`);
  const acked = new Set<string>();
  for (const a of acks) {
    if (acked.has(a.value)) problems.push(`value ${a.value} acknowledged twice`);
    acked.add(a.value);
  }
  return problems;
}

export async function checkRun(input: CheckInput): Promise<CheckResult> {
  const t0 = Date.now();
  const admin = new Admin({ sentinels: input.sentinels, sentinelTimeoutMs: 2000 });
  const pool = new ClientPool({ connectTimeoutMs: 1000 });
  const problems: string[] = [];
  const logs = new Map<number, ReplicaLog[]>();
  const rereads: string[] = [];
  try {
    // Leadership may still move after convergence (a restarted replica rejoining); a read that meets
    // that starts over from convergence, a few times at most.
    let convergedInMs = 0;
    for (let attempt = 1; ; attempt++) {
      const { infos, hws, addresses } = await converge(admin, pool, input);
      convergedInMs = Date.now() - t0;
      try {
        logs.clear();
        for (const p of infos) {
          const hw = hws.get(p.partition)!;
          const order = [p.leader, ...p.replicas.filter((id) => id !== p.leader)];
          const list: ReplicaLog[] = [];
          for (const id of order) {
            const role = id === p.leader ? "leader" : "follower";
            const r = await readReplica(pool, addresses.get(id)!, input.topic, p.partition, role === "leader" ? ReadFrom.LEADER : ReadFrom.FOLLOWER, hw);
            list.push({ broker: id, role, highWatermark: hw, offsets: r.offsets, values: r.values, batchCrcs: r.batchCrcs });
          }
          logs.set(p.partition, list);
        }
        break;
      } catch (e) {
        const why = e instanceof Error ? e.message : String(e);
        rereads.push(why);
        // A replica refuses a range it found damaged (a damaged-segment fault found only now, by this
        // read) and repairs it from a peer within about a second: poll for that, apart from the count.
        if (why.includes("damaged range") && Date.now() - t0 < DAMAGE_REPAIR_WAIT_MS) {
          attempt--;
          await Bun.sleep(DAMAGE_REPAIR_POLL_MS);
          continue;
        }
        if (attempt >= READ_ATTEMPTS_MAX) throw new Error(`reads after convergence failed ${attempt} times, last: ${why}`);
      }
    }
    const records = [...logs.values()].reduce((n, l) => n + l[0]!.offsets.length, 0);
    problems.push(...checkLogs(logs, input.acks, input.sent));
    // The client path: a Consumer reading from leaders must see exactly the leaders' logs.
    const until = new Map([...logs].map(([p, list]) => [p, list[0]!.highWatermark]));
    for (const readFrom of ["leader", "follower"] as const) {
      const got = await readWithConsumer(input, readFrom, until);
      for (const [p, list] of logs) {
        const want = list[0]!;
        const g = got.get(p)!;
        const same = g.length === want.offsets.length && g.every((m, i) => m.offset === want.offsets[i] && m.value === want.values[i]);
        if (!same) problems.push(`p${p}: Consumer(readFrom ${readFrom}) read ${g.length} records, leader log has ${want.offsets.length}, or they differ`);
      }
    }
    return { problems, logs, records, convergedInMs, rereads };
  } catch (e) {
    problems.push(e instanceof Error ? e.message : String(e));
    return { problems, logs, records: 0, convergedInMs: Date.now() - t0, rereads };
  } finally {
    pool.closeAll();
    await admin.close();
  }
}
