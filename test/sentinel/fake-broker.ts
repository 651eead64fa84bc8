// A stand-in for real brokers in sentinel tests: a small wire server per broker that answers the
// sentinel's RPCs, and a shared "Raft truth" per partition (who leads, membership, commit, match index)
// that the test steers. Each fake reports that truth in KeepAlive exactly as a real broker would.

import { create } from "@bufbuild/protobuf";
import {
  ChangeReplicasResponseSchema,
  ErrorCode,
  GetBrokerTopicRoleResponseSchema,
  KeepAliveRequestSchema,
  PartitionStatusSchema,
  RegisterBrokerRequestSchema,
  RemoveTopicResponseSchema,
  Role,
  SetTopicRoleResponseSchema,
  type ChangeReplicasRequest,
  type PartitionStatus,
  type SetTopicRoleRequest,
} from "../../src/proto/goulette_pb";
import { WireClient, WireError, expectCase, serve, type Body, type WireServer } from "../../src/wire";

export interface Truth {
  topic: string;
  partition: number;
  group: number;
  leader: number;
  term: number;
  voters: number[];
  learners: number[];
  commit: number;
  match: Map<number, number>;
}

export type Call =
  | { kind: "setTopicRole"; req: SetTopicRoleRequest }
  | { kind: "removeTopic"; topic: string; partition: number; all: boolean }
  | { kind: "changeReplicas"; req: ChangeReplicasRequest; truth: { voters: number[]; learners: number[]; match: number; commit: number } }
  | { kind: "getBrokerTopicRole"; topic: string; partition: number };

const key = (topic: string, partition: number) => `${topic}/${partition}`;

export class FakeCluster {
  readonly truth = new Map<string, Truth>();
  readonly brokers = new Map<number, FakeBroker>();
  /** How far a new learner's match index moves per KeepAlive of the leader (0: it never catches up). */
  catchUpPerBeat = Number.POSITIVE_INFINITY;
  /** While true, leaders refuse ChangeReplicas remove (a change Raft could not commit yet). */
  refuseRemove = false;

  get(topic: string, partition: number): Truth | undefined {
    return this.truth.get(key(topic, partition));
  }

  /** Raft elected `leader` among the voters at a higher term. */
  elect(topic: string, partition: number, leader: number): void {
    const t = this.get(topic, partition)!;
    if (!t.voters.includes(leader)) throw new Error(`${leader} is not a voter of ${topic}/${partition}`);
    t.leader = leader;
    t.term++;
  }

  async add(id: number, sentinel: string, keepAliveMs = 0): Promise<FakeBroker> {
    const b = new FakeBroker(id, this, sentinel);
    this.brokers.set(id, b);
    await b.start(keepAliveMs);
    return b;
  }

  async stopAll(): Promise<void> {
    for (const b of this.brokers.values()) b.kill();
  }
}

export class FakeBroker {
  readonly calls: Call[] = [];
  readonly hosted = new Set<string>();
  /** Replicas ("topic/partition") this broker reports as having left their group (a storage fault). */
  readonly left = new Set<string>();
  /** Sent with every KeepAlive, as a real broker reports a failed WAL or partition log. */
  storageError = "";
  /** Extra partitions this broker claims in KeepAlive (to test drift repair). */
  readonly phantom: PartitionStatus[] = [];
  /** What this broker claims as the highest producer id its partitions recorded. */
  highestProducerId = 0n;
  failSetTopicRole = 0; // answer this many SetTopicRole calls with an error first
  private server: WireServer | undefined;
  private client: WireClient;
  private timer: ReturnType<typeof setInterval> | undefined;
  address = "";
  registrations = 0;
  unknownBrokerAnswers = 0;
  /** When the last registration was sent (performance.now()): the sentinel saw the broker no earlier. */
  registerSentAt = 0;
  /** When each ChangeReplicas arrived (performance.now()), in order. */
  readonly changeTimes: number[] = [];

  constructor(
    readonly id: number,
    private readonly cluster: FakeCluster,
    private sentinel: string,
  ) {
    this.client = new WireClient(sentinel, { requestTimeoutMs: 2_000, connectTimeoutMs: 500, backoffMaxMs: 100 });
  }

  async start(keepAliveMs: number): Promise<void> {
    this.server = serve({ hostname: "127.0.0.1", port: 0, handle: (body) => this.handle(body) });
    this.address = `127.0.0.1:${this.server.port}`;
    await this.register();
    await this.keepAlive(); // as a real broker does right after registering
    if (keepAliveMs > 0) this.beatEvery(keepAliveMs);
  }

  beatEvery(ms: number): void {
    clearInterval(this.timer);
    this.timer = setInterval(() => void this.keepAlive().catch(() => {}), ms);
  }

  /** Points the broker at another sentinel (a restarted one on a new port). */
  useSentinel(address: string): void {
    this.client.close();
    this.sentinel = address;
    this.client = new WireClient(address, { requestTimeoutMs: 2_000, connectTimeoutMs: 500, backoffMaxMs: 100 });
  }

  async register(address = this.address): Promise<void> {
    this.registerSentAt = performance.now();
    const res = await this.client.call({
      case: "registerBroker",
      value: create(RegisterBrokerRequestSchema, { brokerId: this.id, address, fsyncPolicy: "always", version: "fake" }),
    });
    expectCase(res, "registerBrokerResponse");
    this.registrations++;
  }

  /** One KeepAlive; re-registers when told UNKNOWN_BROKER, as a real broker must. */
  async keepAlive(): Promise<void> {
    const partitions = [...this.statuses(), ...this.phantom];
    const res = await this.client.call({
      case: "keepAlive",
      value: create(KeepAliveRequestSchema, {
        brokerId: this.id,
        address: this.address,
        partitions,
        fsyncPolicy: "always",
        highestProducerId: this.highestProducerId,
        storageError: this.storageError,
      }),
    });
    try {
      expectCase(res, "keepAliveResponse");
    } catch (e) {
      if (e instanceof WireError && e.code === ErrorCode.UNKNOWN_BROKER) {
        this.unknownBrokerAnswers++;
        await this.register();
        await this.keepAlive(); // and beat again at once, as a real broker's session does
        return;
      }
      throw e;
    }
    // A leader's learners catch up as it keeps replicating.
    for (const k of this.hosted) {
      const t = this.cluster.truth.get(k);
      if (!t || t.leader !== this.id) continue;
      for (const l of t.learners) t.match.set(l, Math.min(t.commit, (t.match.get(l) ?? 0) + this.cluster.catchUpPerBeat));
    }
  }

  /** kill -9: no more answers, no more beats. */
  kill(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.server?.stop();
    this.server = undefined;
    this.client.close();
  }

  /** Comes back on the same address after a kill. */
  async revive(keepAliveMs: number): Promise<void> {
    const port = Number(this.address.split(":")[1]);
    this.server = serve({ hostname: "127.0.0.1", port, handle: (body) => this.handle(body) });
    this.client = new WireClient(this.sentinel, { requestTimeoutMs: 2_000, connectTimeoutMs: 500, backoffMaxMs: 100 });
    await this.register();
    await this.keepAlive();
    if (keepAliveMs > 0) this.beatEvery(keepAliveMs);
  }

  statuses(): PartitionStatus[] {
    return [...this.hosted].flatMap((k) => {
      const t = this.cluster.truth.get(k);
      return t ? [this.status(t)] : [];
    });
  }

  status(t: Truth): PartitionStatus {
    const leader = t.leader === this.id;
    return create(PartitionStatusSchema, {
      topic: t.topic,
      partition: t.partition,
      group: BigInt(t.group),
      role: leader ? Role.LEADER : t.learners.includes(this.id) ? Role.LEARNER : Role.FOLLOWER,
      term: BigInt(t.term),
      leaderId: t.leader,
      commitIndex: BigInt(t.commit),
      voters: [...t.voters],
      learners: [...t.learners],
      matchIndex: leader ? Object.fromEntries([...t.match].map(([b, m]) => [b, BigInt(m)])) : {},
      left: this.left.has(`${t.topic}/${t.partition}`),
    });
  }

  private handle(body: Body): Body {
    switch (body.case) {
      case "setTopicRole": {
        const req = body.value;
        this.calls.push({ kind: "setTopicRole", req });
        if (this.failSetTopicRole > 0) {
          this.failSetTopicRole--;
          throw new WireError(ErrorCode.STORAGE_ERROR, "injected failure");
        }
        const k = key(req.topic, req.partition);
        let t = this.cluster.truth.get(k);
        if (!t || t.group !== Number(req.group)) {
          // The first replica to hear of a group creates it; Raft then elects the hinted leader.
          const voters = req.role === Role.LEARNER ? req.followers.map((f) => f.id) : [this.id, ...req.followers.map((f) => f.id)];
          t = {
            topic: req.topic,
            partition: req.partition,
            group: Number(req.group),
            leader: req.leaderId,
            term: 1,
            voters: voters.sort((a, b) => a - b),
            learners: req.learners.map((l) => l.id),
            commit: 10,
            match: new Map(),
          };
          this.cluster.truth.set(k, t);
        }
        this.hosted.add(k);
        return { case: "setTopicRoleResponse", value: create(SetTopicRoleResponseSchema, { status: this.status(t) }) };
      }
      case "removeTopic": {
        const v = body.value;
        this.calls.push({ kind: "removeTopic", topic: v.topic, partition: v.partition, all: v.allPartitions });
        for (const k of [...this.hosted]) {
          if (v.allPartitions ? k.startsWith(`${v.topic}/`) : k === key(v.topic, v.partition)) this.hosted.delete(k);
        }
        const i = this.phantom.findIndex((s) => s.topic === v.topic && (v.allPartitions || s.partition === v.partition));
        if (i >= 0) this.phantom.splice(i, 1);
        return { case: "removeTopicResponse", value: create(RemoveTopicResponseSchema, {}) };
      }
      case "getBrokerTopicRole": {
        const v = body.value;
        this.calls.push({ kind: "getBrokerTopicRole", topic: v.topic, partition: v.partition });
        const t = this.cluster.get(v.topic, v.partition);
        if (!t || !this.hosted.has(key(v.topic, v.partition))) {
          throw new WireError(ErrorCode.UNKNOWN_TOPIC, `not hosting ${v.topic}/${v.partition}`);
        }
        return { case: "getBrokerTopicRoleResponse", value: create(GetBrokerTopicRoleResponseSchema, { status: this.status(t) }) };
      }
      case "changeReplicas": {
        const req = body.value;
        const t = this.cluster.get(req.topic, req.partition);
        if (!t || t.leader !== this.id) throw new WireError(ErrorCode.NOT_LEADER, "not the leader");
        if (req.remove !== 0 && this.cluster.refuseRemove) throw new WireError(ErrorCode.TIMEOUT, "the removal did not commit in time");
        this.changeTimes.push(performance.now());
        this.calls.push({
          kind: "changeReplicas",
          req,
          truth: { voters: [...t.voters], learners: [...t.learners], match: t.match.get(req.promote) ?? -1, commit: t.commit },
        });
        if (req.transferLeaderTo !== 0) {
          // Raft hands over to a caught-up voter (at once here) at a higher term.
          if (!t.voters.includes(req.transferLeaderTo)) throw new Error("transfer to a non-voter");
          t.leader = req.transferLeaderTo;
          t.term++;
        } else if (req.addLearner && req.addLearner.id !== 0) {
          if (!t.learners.includes(req.addLearner.id) && !t.voters.includes(req.addLearner.id)) {
            t.learners.push(req.addLearner.id);
            t.match.set(req.addLearner.id, 0);
          }
        } else if (req.promote !== 0) {
          if ((t.match.get(req.promote) ?? 0) < t.commit) throw new Error("promoted a learner that had not caught up");
          t.learners = t.learners.filter((l) => l !== req.promote);
          if (!t.voters.includes(req.promote)) t.voters.push(req.promote);
        } else if (req.remove !== 0) {
          t.voters = t.voters.filter((v) => v !== req.remove);
          t.learners = t.learners.filter((v) => v !== req.remove);
          t.match.delete(req.remove);
        }
        return { case: "changeReplicasResponse", value: create(ChangeReplicasResponseSchema, { status: this.status(t) }) };
      }
      default:
        throw new WireError(ErrorCode.UNSUPPORTED_REQUEST, `fake broker does not serve ${body.case}`);
    }
  }
}

/** Polls `cond` until it holds; fails with `what` after `timeoutMs`. For state reached by timers. */
export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 4_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await cond())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(5);
  }
}
