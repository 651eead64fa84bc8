// Request handlers of a broker: each turns one request body into one response body. Errors cross the wire
// as typed codes (NOT_LEADER with the leader's address, OFFSET_OUT_OF_RANGE with the valid range, ...).
import { create } from "@bufbuild/protobuf";
import {
  ChangeReplicasResponseSchema,
  ErrorCode,
  FetchResponseSchema,
  GetBrokerTopicRoleResponseSchema,
  OffsetCommitResponseSchema,
  OffsetFetchResponseSchema,
  ProduceResponseSchema,
  ReadFrom,
  RemoveTopicResponseSchema,
  ReplicateFragmentResponseSchema,
  SetTopicRoleResponseSchema,
  type ChangeReplicasRequest,
  type FetchRequest,
  type OffsetCommitRequest,
  type OffsetFetchRequest,
  type ProduceRequest,
  type ReplicateFragmentRequest,
} from "../proto/goulette_pb";
import { readBatchHeader, verifyBatch } from "../wire/batch";
import { StorageError } from "../storage";
import { errorBody, WireError, type Body } from "../wire";
import type { Broker } from "./broker";
import { CommandKind, encodeCommand } from "./commands";
import { NotLeaderError, type Partition } from "./partition";
import type { ApplyResult } from "./partition-state";

const PRODUCE_TIMEOUT_MS_DEFAULT = 30_000;
const FETCH_MAX_BYTES_DEFAULT = 1024 * 1024;
const FETCH_MAX_BYTES_MAX = 8 * 1024 * 1024;
const FETCH_WAIT_MS_MAX = 30_000;
const BATCH_MAX_BYTES = 8 * 1024 * 1024;

export class BrokerHandlers {
  constructor(private b: Broker) {}

  handle(body: Body): Body | Promise<Body> {
    switch (body.case) {
      case "produce":
        return this.produce(body.value);
      case "fetch":
        return this.fetch(body.value);
      case "setTopicRole":
        return this.b.setTopicRole(body.value).then((p) => ({
          case: "setTopicRoleResponse" as const,
          value: create(SetTopicRoleResponseSchema, { status: this.b.status(p) }),
        }));
      case "getBrokerTopicRole": {
        const p = this.b.byName.get(`${body.value.topic}/${body.value.partition}`);
        if (!p) return errorBody(ErrorCode.UNKNOWN_PARTITION, `${body.value.topic}/${body.value.partition} is not hosted on broker ${this.b.opts.id}`);
        return { case: "getBrokerTopicRoleResponse", value: create(GetBrokerTopicRoleResponseSchema, { status: this.b.status(p) }) };
      }
      case "removeTopic":
        return this.removeTopic(body.value.topic, body.value.allPartitions ? undefined : body.value.partition, body.value.groups.map(Number));
      case "changeReplicas":
        return this.changeReplicas(body.value);
      case "replicateFragment":
        return this.replicateFragment(body.value);
      case "offsetCommit":
        return this.offsetCommit(body.value);
      case "offsetFetch":
        return this.offsetFetch(body.value);
      default:
        return errorBody(ErrorCode.UNSUPPORTED_REQUEST, `a broker does not serve ${body.case ?? "an empty frame"}`);
    }
  }

  private partition(topic: string, partition: number): Partition {
    const p = this.b.byName.get(`${topic}/${partition}`);
    if (!p || p.removed) throw new WireError(ErrorCode.UNKNOWN_PARTITION, `${topic}/${partition} is not hosted on broker ${this.b.opts.id}`);
    return p;
  }

  private notLeader(p: Partition): WireError {
    const leaderId = p.node.leader;
    const leaderAddress = leaderId === this.b.opts.id ? this.b.address : (this.b.peers.addressOf(leaderId) ?? "");
    return new WireError(
      leaderId ? ErrorCode.NOT_LEADER : ErrorCode.LEADER_NOT_AVAILABLE,
      leaderId ? `broker ${this.b.opts.id} does not lead ${p.key}; broker ${leaderId} does` : `${p.key} has no leader yet (election in progress)`,
      { leaderId, leaderAddress },
    );
  }

  /** Maps what went wrong in a write path to the error the client acts on. */
  private writeError(p: Partition, e: unknown): WireError {
    if (e instanceof WireError) return e;
    if (e instanceof NotLeaderError) return this.notLeader(p);
    if (e instanceof StorageError) return new WireError(e.code === "DISK_FULL" ? ErrorCode.DISK_FULL : ErrorCode.STORAGE_ERROR, `${p.key}: ${e.message}`);
    if (e instanceof TimeoutError) return new WireError(ErrorCode.TIMEOUT, `${p.key}: ${e.message}`);
    return new WireError(ErrorCode.STORAGE_ERROR, `${p.key}: ${(e as Error).message}`);
  }

  private async produce(req: ProduceRequest): Promise<Body> {
    const p = this.partition(req.topic, req.partition);
    const refused = p.writeRefusal();
    if (refused) throw this.writeError(p, refused);
    if (req.batch.length > BATCH_MAX_BYTES) throw new WireError(ErrorCode.BATCH_TOO_LARGE, `batch of ${req.batch.length} bytes exceeds ${BATCH_MAX_BYTES}`);
    const bad = verifyBatch(req.batch);
    if (bad) throw new WireError(ErrorCode.CORRUPT_BATCH, `rejected batch for ${p.key}: ${bad}; nothing appended`);
    const h = readBatchHeader(req.batch);
    if (h.recordCount === 0) throw new WireError(ErrorCode.CORRUPT_BATCH, "a batch must hold at least one record");
    if (req.producerId !== 0n && (Number(req.producerId) !== h.producerId || req.producerEpoch !== h.producerEpoch || req.baseSequence !== h.baseSequence)) {
      throw new WireError(ErrorCode.INVALID_ARGUMENT, "producer id, epoch and sequence differ between the request and its batch");
    }
    let result: ApplyResult;
    try {
      result = await withTimeout(p.propose(req.batch), req.timeoutMs || PRODUCE_TIMEOUT_MS_DEFAULT);
    } catch (e) {
      throw this.writeError(p, e);
    }
    switch (result.kind) {
      case "appended":
        return { case: "produceResponse", value: create(ProduceResponseSchema, { baseOffset: BigInt(result.baseOffset), logAppendTimeMs: BigInt(Date.now()) }) };
      case "duplicate":
        return { case: "produceResponse", value: create(ProduceResponseSchema, { baseOffset: BigInt(result.baseOffset), duplicate: true }) };
      case "fenced":
        throw new WireError(ErrorCode.PRODUCER_FENCED, result.message);
      case "out-of-order":
        throw new WireError(ErrorCode.OUT_OF_ORDER_SEQUENCE, result.message);
      default:
        throw new WireError(ErrorCode.UNKNOWN, `unexpected apply result ${result.kind}`);
    }
  }

  private async fetch(req: FetchRequest): Promise<Body> {
    const p = this.partition(req.topic, req.partition);
    if (req.readFrom === ReadFrom.LEADER && !p.isLeader()) throw this.notLeader(p);
    const offset = Number(req.offset);
    const range = () => ({ earliestOffset: p.log.logStartOffset, latestOffset: p.log.nextOffset });
    if (offset < p.log.logStartOffset || offset > p.log.nextOffset) {
      throw new WireError(ErrorCode.OFFSET_OUT_OF_RANGE, `offset ${offset} is outside ${p.key}'s range [${p.log.logStartOffset}, ${p.log.nextOffset}]`, range());
    }
    if (offset === p.log.nextOffset && (p.left || this.b.walFailed)) {
      // This replica's log will not grow (it left its group, or its broker's WAL failed): what it holds is
      // served, but a reader at its end would wait here for ever. Another replica has what follows.
      throw new WireError(ErrorCode.STORAGE_ERROR, `${p.key}: this replica takes no more writes (${(p.failed ?? this.b.walFailed)?.message}); read from another replica`);
    }
    if (offset === p.log.nextOffset) await p.waitForData(offset, Math.min(req.maxWaitMs, FETCH_WAIT_MS_MAX));
    const maxBytes = Math.min(req.maxBytes || FETCH_MAX_BYTES_DEFAULT, FETCH_MAX_BYTES_MAX);
    let records: Uint8Array = new Uint8Array(0);
    let nextOffset = offset;
    if (offset < p.log.nextOffset) {
      try {
        const r = p.log.read(offset, maxBytes);
        records = r.records;
        nextOffset = r.nextOffset;
      } catch (e) {
        if (e instanceof StorageError && e.code === "OFFSET_OUT_OF_RANGE") throw new WireError(ErrorCode.OFFSET_OUT_OF_RANGE, e.message, range());
        if (e instanceof StorageError && e.code === "CORRUPT_DATA") {
          void this.b.repair(p);
          throw new WireError(ErrorCode.CORRUPT_DATA, `${p.key}: ${e.message}; repairing from a peer`);
        }
        throw e;
      }
    }
    return {
      case: "fetchResponse",
      value: create(FetchResponseSchema, {
        highWatermark: BigInt(p.log.nextOffset),
        logStartOffset: BigInt(p.log.logStartOffset),
        nextOffset: BigInt(nextOffset),
        replicaId: this.b.opts.id,
        replicaRole: this.b.status(p).role,
        records,
      }),
    };
  }

  private async removeTopic(topic: string, partition: number | undefined, groups: number[]): Promise<Body> {
    const targets =
      partition === undefined ? [...this.b.byName.values()].filter((p) => p.id.topic === topic).map((p) => p.id.partition) : [partition];
    for (const part of targets) {
      // A removal names the incarnations it means: one for a topic deleted and created again since is ignored.
      const hosted = this.b.byName.get(`${topic}/${part}`);
      if (groups.length > 0 && hosted && !groups.includes(hosted.id.group)) continue;
      await this.b.removePartition(topic, part);
    }
    return { case: "removeTopicResponse", value: create(RemoveTopicResponseSchema, {}) };
  }

  private async changeReplicas(req: ChangeReplicasRequest): Promise<Body> {
    const p = this.partition(req.topic, req.partition);
    if (!p.isLeader()) throw this.notLeader(p);
    try {
      if (req.transferLeaderTo) {
        p.node.transferLeadership(req.transferLeaderTo);
        this.b.markDirty(p);
      } else {
        let change: Parameters<Partition["proposeConfChange"]>[0];
        if (req.addLearner && req.addLearner.id) {
          this.b.peers.setAddress(req.addLearner.id, req.addLearner.address);
          change = { type: "add-learner", node: req.addLearner.id };
        } else if (req.promote) change = { type: "promote", node: req.promote };
        else if (req.remove) change = { type: "remove", node: req.remove };
        else throw new WireError(ErrorCode.INVALID_ARGUMENT, "ChangeReplicas names no change");
        const applied = p.proposeConfChange(change);
        this.b.markDirty(p);
        await withTimeout(applied, 10_000);
      }
    } catch (e) {
      throw this.writeError(p, e);
    }
    return { case: "changeReplicasResponse", value: create(ChangeReplicasResponseSchema, { status: this.b.status(p) }) };
  }

  private replicateFragment(req: ReplicateFragmentRequest): Body {
    const p = this.partition(req.topic, req.partition);
    const from = Number(req.fromOffset);
    const base = { logStartOffset: BigInt(p.log.logStartOffset) };
    if (from < p.log.logStartOffset) return { case: "replicateFragmentResponse", value: create(ReplicateFragmentResponseSchema, base) };
    if (from >= p.log.nextOffset) {
      return { case: "replicateFragmentResponse", value: create(ReplicateFragmentResponseSchema, { ...base, baseOffset: BigInt(from), nextOffset: BigInt(from), done: true }) };
    }
    let f;
    try {
      f = p.log.readFragment(from, Math.min(req.maxBytes || 4 << 20, 8 << 20));
    } catch (e) {
      if (e instanceof StorageError && e.code === "CORRUPT_DATA") {
        void this.b.repair(p);
        throw new WireError(ErrorCode.CORRUPT_DATA, `${p.key}: ${e.message}`);
      }
      throw e;
    }
    return {
      case: "replicateFragmentResponse",
      value: create(ReplicateFragmentResponseSchema, {
        ...base,
        baseOffset: BigInt(f.baseOffset),
        nextOffset: BigInt(f.nextOffset),
        crc32: f.crc32,
        done: f.nextOffset >= p.log.nextOffset,
        data: f.data,
      }),
    };
  }

  private async offsetCommit(req: OffsetCommitRequest): Promise<Body> {
    const p = this.partition(req.topic, req.partition);
    if (!p.isLeader()) throw this.notLeader(p);
    if (!req.groupId) throw new WireError(ErrorCode.INVALID_ARGUMENT, "offset commit needs a group id");
    try {
      await withTimeout(
        p.propose(encodeCommand({ kind: CommandKind.OffsetCommit, group: req.groupId, offset: Number(req.offset), metadata: req.metadata })),
        PRODUCE_TIMEOUT_MS_DEFAULT,
      );
    } catch (e) {
      throw this.writeError(p, e);
    }
    this.b.markDirty(p);
    return { case: "offsetCommitResponse", value: create(OffsetCommitResponseSchema, {}) };
  }

  private offsetFetch(req: OffsetFetchRequest): Body {
    const p = this.partition(req.topic, req.partition);
    const c = p.state.offsets.get(req.groupId);
    return {
      case: "offsetFetchResponse",
      value: create(OffsetFetchResponseSchema, { found: c !== undefined, offset: BigInt(c?.offset ?? 0), metadata: c?.metadata ?? "" }),
    };
  }
}

class TimeoutError extends Error {}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new TimeoutError(`not committed within ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

