// Raft messages between brokers: the core's plain objects <-> the wire's RaftBatch. Everything one broker
// sends another in one pump cycle travels as ONE RaftBatch frame, and heartbeats (the bulk of idle traffic
// with many partitions) shrink to a GroupHeartbeat of four fields each.
import { create } from "@bufbuild/protobuf";
import {
  EntryType as WireEntryType,
  GroupHeartbeatSchema,
  RaftBatchSchema,
  RaftEntrySchema,
  RaftMessageSchema,
  SnapshotMetaSchema,
  type RaftBatch,
  type RaftMessage,
} from "../proto/goulette_pb";
import { MessageType, type Entry, type EntryType, type Message, type NodeId, type SnapshotMeta } from "../raft/types";

export interface GroupMessage {
  group: number;
  msg: Message;
}

const EMPTY = new Uint8Array(0);

function isPlainHeartbeat(m: Message): boolean {
  return (
    (m.type === MessageType.Heartbeat || m.type === MessageType.HeartbeatResponse) &&
    m.logTerm === 0 && m.index === 0 && !m.reject && m.rejectHint === 0 && m.hintTerm === 0 &&
    m.entries.length === 0 && m.snapshot === undefined
  );
}

export function encodeRaftBatch(from: NodeId, to: NodeId, msgs: GroupMessage[]): RaftBatch {
  const batch = create(RaftBatchSchema, { from, to });
  for (const { group, msg } of msgs) {
    if (isPlainHeartbeat(msg)) {
      batch.heartbeats.push(
        create(GroupHeartbeatSchema, {
          group: BigInt(group),
          term: BigInt(msg.term),
          commit: BigInt(msg.commit),
          response: msg.type === MessageType.HeartbeatResponse,
          context: msg.context ?? EMPTY,
        }),
      );
      continue;
    }
    batch.messages.push(
      create(RaftMessageSchema, {
        group: BigInt(group),
        type: msg.type as number,
        from: msg.from,
        to: msg.to,
        term: BigInt(msg.term),
        logTerm: BigInt(msg.logTerm),
        index: BigInt(msg.index),
        commit: BigInt(msg.commit),
        reject: msg.reject,
        rejectHint: BigInt(msg.rejectHint),
        hintTerm: BigInt(msg.hintTerm),
        context: msg.context ?? EMPTY,
        snapshot: msg.snapshot && create(SnapshotMetaSchema, encodeSnapshotMeta(msg.snapshot)),
        entries: msg.entries.map((e) =>
          create(RaftEntrySchema, { term: BigInt(e.term), index: BigInt(e.index), type: e.type as number as WireEntryType, data: e.data }),
        ),
      }),
    );
  }
  return batch;
}

function encodeSnapshotMeta(s: SnapshotMeta) {
  return { index: BigInt(s.index), term: BigInt(s.term), voters: s.conf.voters, learners: s.conf.learners, data: s.data };
}

export function decodeRaftBatch(batch: RaftBatch): GroupMessage[] {
  const out: GroupMessage[] = [];
  for (const h of batch.heartbeats) {
    out.push({
      group: Number(h.group),
      msg: {
        type: h.response ? MessageType.HeartbeatResponse : MessageType.Heartbeat,
        from: batch.from,
        to: batch.to,
        term: Number(h.term),
        logTerm: 0,
        index: 0,
        commit: Number(h.commit),
        reject: false,
        rejectHint: 0,
        hintTerm: 0,
        entries: [],
        context: h.context.length ? h.context : undefined,
      },
    });
  }
  for (const m of batch.messages) out.push({ group: Number(m.group), msg: decodeRaftMessage(m) });
  return out;
}

function decodeRaftMessage(m: RaftMessage): Message {
  const entries: Entry[] = m.entries.map((e) => ({
    term: Number(e.term),
    index: Number(e.index),
    type: e.type as number as EntryType,
    data: e.data,
  }));
  return {
    type: m.type as number as MessageType,
    from: m.from,
    to: m.to,
    term: Number(m.term),
    logTerm: Number(m.logTerm),
    index: Number(m.index),
    commit: Number(m.commit),
    reject: m.reject,
    rejectHint: Number(m.rejectHint),
    hintTerm: Number(m.hintTerm),
    entries,
    snapshot: m.snapshot && {
      index: Number(m.snapshot.index),
      term: Number(m.snapshot.term),
      conf: { voters: [...m.snapshot.voters], learners: [...m.snapshot.learners] },
      data: m.snapshot.data,
    },
    context: m.context.length ? m.context : undefined,
  };
}
