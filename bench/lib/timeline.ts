// Where one produce cycle's time goes, from the kernel's syscall tracepoints (`perf record -e
// syscalls:sys_{enter,exit}_{sendto,recvfrom,pwrite64,fdatasync}` on every CPU, printed by `perf script`):
// for each batch the client sends, when the leader has it, when its Appends leave, when the first follower
// has it, writes it, starts and ends its fdatasync and answers, and when the client has its acks. Medians
// over the cycles say which hand-off is long; no process needs to be instrumented.

import { round } from "./emit";

export interface Call {
  start: number; // seconds (perf clock)
  end: number;
  pid: string;
  tid: string;
  name: string; // sendto | recvfrom | pwrite64 | fdatasync
  ret: number;
  fd: number; // the first argument where the call has one (-1 otherwise)
}

const LINE = /^\s*(.+?)\s+(\d+)\/(\d+)\s+([\d.]+):\s+syscalls:sys_(enter|exit)_(\w+):\s*(.*)$/;

/** Pairs each thread's enter and exit events into calls, sorted by start. */
export function parsePerfScript(text: string): Call[] {
  const open = new Map<string, { start: number; name: string; fd: number }>();
  const calls: Call[] = [];
  for (const line of text.split("\n")) {
    const m = LINE.exec(line);
    if (!m) continue;
    const [, , pid, tid, ts, kind, name, rest] = m as unknown as [string, string, string, string, string, string, string, string];
    const t = Number(ts);
    if (kind === "enter") {
      const fd = /fd: (0x[0-9a-f]+)/.exec(rest);
      open.set(tid, { start: t, name, fd: fd ? Number.parseInt(fd[1]!, 16) : -1 });
      continue;
    }
    const o = open.get(tid);
    open.delete(tid);
    if (!o || o.name !== name) continue;
    const ret = Number.parseInt(rest.trim(), 16);
    calls.push({ start: o.start, end: t, pid, tid, name, ret: Number.isFinite(ret) ? ret : -1, fd: o.fd });
  }
  return calls.sort((a, b) => a.start - b.start);
}

export interface Roles {
  client: string;
  leader: string;
  followers: string[];
}

/** The client sends the batches (the most large sends outside the brokers); the leader forwards them. */
export function findRoles(calls: Call[], brokerPids: string[], bigBytes: number): Roles | undefined {
  const bigSends = new Map<string, number>();
  for (const c of calls) if (c.name === "sendto" && c.ret >= bigBytes) bigSends.set(c.pid, (bigSends.get(c.pid) ?? 0) + 1);
  const top = (pids: string[]) => pids.sort((a, b) => (bigSends.get(b) ?? 0) - (bigSends.get(a) ?? 0))[0];
  const client = top([...bigSends.keys()].filter((p) => !brokerPids.includes(p)));
  const leader = top(brokerPids.filter((p) => bigSends.has(p)));
  if (!client || !leader) return undefined;
  return { client, leader, followers: brokerPids.filter((p) => p !== leader) };
}

/** Stage names in the order a cycle passes them, each timed from the client's send. */
export const STAGES = [
  "leader_has_batch",
  "first_append_sent",
  "leader_wal_write",
  "leader_fsync_start",
  "leader_fsync_end",
  "follower_has_batch",
  "follower_wal_write",
  "follower_fsync_start",
  "follower_fsync_end",
  "follower_answer",
  "leader_has_answer",
  "leader_sends_acks",
  "client_has_acks",
  "next_batch_sent",
] as const;

export type Stage = (typeof STAGES)[number];

/**
 * One row per cycle (client big send to the next), each stage in ms from its start, for the follower that
 * answered first. `bigBytes`: a batch's send and write size (e.g. 100 KiB at 256 x 1 KiB, 1,000 B at 1).
 */
export function cycleStages(calls: Call[], roles: Roles, bigBytes: number): Partial<Record<Stage, number>>[] {
  const starts = calls.filter((c) => c.pid === roles.client && c.name === "sendto" && c.ret >= bigBytes).map((c) => c.start);
  const rows: Partial<Record<Stage, number>>[] = [];
  // The first call starting in [after, before) that pred accepts (calls are sorted by start).
  const first = (after: number, before: number, pred: (c: Call) => boolean): Call | undefined => {
    let lo = 0;
    let hi = calls.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (calls[mid]!.start < after) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < calls.length && calls[i]!.start < before; i++) if (pred(calls[i]!)) return calls[i];
    return undefined;
  };
  for (let i = 0; i + 1 < starts.length; i++) {
    const t0 = starts[i]!;
    const tn = starts[i + 1]!;
    const ms = (t: number) => (t - t0) * 1000;
    const row: Partial<Record<Stage, number>> = { next_batch_sent: ms(tn) };
    const lr = first(t0, tn, (c) => c.pid === roles.leader && c.name === "recvfrom" && c.ret >= bigBytes);
    if (!lr) continue;
    row.leader_has_batch = ms(lr.end);
    const ls = first(lr.end, tn, (c) => c.pid === roles.leader && c.name === "sendto" && c.ret >= bigBytes);
    if (ls) row.first_append_sent = ms(ls.start);
    const lw = first(lr.end, tn, (c) => c.pid === roles.leader && c.name === "pwrite64" && c.ret >= bigBytes);
    if (lw) row.leader_wal_write = ms(lw.start);
    const lf = lw && first(lw.end, tn, (c) => c.pid === roles.leader && c.name === "fdatasync");
    if (lf) {
      row.leader_fsync_start = ms(lf.start);
      row.leader_fsync_end = ms(lf.end);
    }
    let best: Partial<Record<Stage, number>> | undefined;
    for (const f of roles.followers) {
      const r = first(ls?.start ?? lr.end, tn, (c) => c.pid === f && c.name === "recvfrom" && c.ret >= bigBytes);
      if (!r) continue;
      const w = first(r.end, tn, (c) => c.pid === f && c.name === "pwrite64" && c.ret >= bigBytes);
      if (!w) continue;
      const s = first(w.end, tn, (c) => c.pid === f && c.name === "fdatasync");
      if (!s) continue;
      const a = first(s.end, tn, (c) => c.pid === f && c.name === "sendto" && c.ret < 256);
      if (!a) continue;
      if (best === undefined || ms(a.start) < best.follower_answer!) {
        best = {
          follower_has_batch: ms(r.end),
          follower_wal_write: ms(w.start),
          follower_fsync_start: ms(s.start),
          follower_fsync_end: ms(s.end),
          follower_answer: ms(a.start),
        };
      }
    }
    if (!best) continue;
    Object.assign(row, best);
    const answered = t0 + best.follower_answer! / 1000;
    const la = first(answered, tn, (c) => c.pid === roles.leader && c.name === "recvfrom" && c.ret > 0 && c.ret < 4096);
    if (la) row.leader_has_answer = ms(la.end);
    // The leader's answer: its first send on the client's connection after it has the follower's answer
    // and its own fdatasync has ended (the ack needs both).
    const readyAt = Math.max(la?.end ?? answered, lf?.end ?? answered);
    const lsend = first(readyAt, tn, (c) => c.pid === roles.leader && c.name === "sendto" && c.fd === lr.fd);
    if (lsend) row.leader_sends_acks = ms(lsend.start);
    const ack = first(answered, tn, (c) => c.pid === roles.client && c.name === "recvfrom");
    if (ack) row.client_has_acks = ms(ack.end);
    rows.push(row);
  }
  return rows;
}

/** Median of each stage over the rows that have it. */
export function stageMedians(rows: Partial<Record<Stage, number>>[]): Partial<Record<Stage, number>> {
  const out: Partial<Record<Stage, number>> = {};
  for (const s of STAGES) {
    const v = rows.map((r) => r[s]).filter((x): x is number => x !== undefined).sort((a, b) => a - b);
    if (v.length > 0) out[s] = round(v[v.length >> 1]!, 3);
  }
  return out;
}

/** Mean and percentiles of the whole cycle (client send to its next send), in ms. */
export function cycleSpread(rows: Partial<Record<Stage, number>>[]): { mean: number; p50: number; p90: number; p99: number } | undefined {
  const v = rows.map((r) => r.next_batch_sent).filter((x): x is number => x !== undefined).sort((a, b) => a - b);
  if (v.length === 0) return undefined;
  const at = (q: number) => round(v[Math.min(v.length - 1, Math.floor(q * v.length))]!, 3);
  return { mean: round(v.reduce((a, b) => a + b, 0) / v.length, 3), p50: at(0.5), p90: at(0.9), p99: at(0.99) };
}

/** The `fraction` of rows with the longest cycles. */
export function slowest(rows: Partial<Record<Stage, number>>[], fraction: number): Partial<Record<Stage, number>>[] {
  const sorted = rows.filter((r) => r.next_batch_sent !== undefined).sort((a, b) => b.next_batch_sent! - a.next_batch_sent!);
  return sorted.slice(0, Math.max(1, Math.round(sorted.length * fraction)));
}
