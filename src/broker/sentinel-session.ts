// The broker's side of the cluster map: register with a sentinel, then beat with the status of every
// partition hosted here, so the sentinel knows what Raft decided. A sentinel that forgot us (restarted)
// answers UNKNOWN_BROKER and we register again; a sentinel that is not the leader names the leader.
import { create } from "@bufbuild/protobuf";
import {
  DescribeTopicRequestSchema,
  ErrorCode,
  KeepAliveRequestSchema,
  RegisterBrokerRequestSchema,
  UnregisterBrokerRequestSchema,
  type TopicMetadata,
} from "../proto/goulette_pb";
import type { Logger } from "../log";
import { expectCase, WireError, type ClientPool } from "../wire";
import type { StatusReport } from "./status-reports";

export interface SessionOptions {
  brokerId: number;
  address: string;
  sentinels: string[];
  fsyncPolicy: string;
  /** Why this broker cannot store writes any more, or "" (sent on every beat). */
  storageError?: () => string;
  /** The highest producer id recorded by any partition here (sent on every beat). */
  highestProducerId?: () => number;
  version: string;
  /** This beat's report on the partitions (see StatusReports): all of them, or what changed. */
  report(o: { full: boolean; deltas: boolean; nowMs: number }): StatusReport;
}

const DEFAULT_KEEP_ALIVE_MS = 200;
const CALL_TIMEOUT_MS = 2_000;
const BACKOFF_MAX_MS = 1_000;
/**
 * A full report goes out this often (beats) whatever changed: a status that changed unnoticed is sent
 * anyway. To a sentinel that takes deltas, less often: every change a beat notices reaches it within a
 * beat, so the full report is only the safety net, and at 1,000 idle partitions it was most of what an
 * idle broker's beats cost (1,000 statuses built, encoded and sent every 5 s).
 */
const FULL_REPORT_EVERY_BEATS = 25;
const FULL_REPORT_EVERY_BEATS_WITH_DELTAS = 150;

export class SentinelSession {
  private current = 0; // index into sentinels
  private leaderHint: string | undefined;
  private registered = false;
  private keepAliveMs = DEFAULT_KEEP_ALIVE_MS;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;
  private failures = 0;
  private beating = false;
  private nudged = false;
  /** The next report must be full: the sentinel holds none it can build on (registration, a lost beat, its ask). */
  private needFull = true;
  /** The sentinel said it takes deltas (RegisterBrokerResponse.accepts_delta_reports). */
  private deltas = false;
  private beatsSinceFull = 0;

  constructor(
    private opts: SessionOptions,
    private pool: ClientPool,
    private log: Logger,
  ) {}

  start(): void {
    this.schedule(0);
  }

  private target(): string {
    return this.leaderHint ?? this.opts.sentinels[this.current % this.opts.sentinels.length]!;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.beat(), ms);
  }

  /** Report now rather than at the next beat (a role changed: clients find the new leader sooner). */
  nudge(): void {
    if (this.stopped || !this.registered) return;
    if (this.beating) {
      this.nudged = true;
      return;
    }
    clearTimeout(this.timer);
    this.schedule(0);
  }

  private async beat(): Promise<void> {
    if (this.stopped) return;
    this.beating = true;
    try {
      await this.beatOnce();
    } finally {
      this.beating = false;
    }
    if (this.nudged) {
      this.nudged = false;
      clearTimeout(this.timer);
      this.schedule(0);
    }
  }

  private async beatOnce(): Promise<void> {
    const address = this.target();
    try {
      if (!this.registered) {
        const res = expectCase(
          await this.pool.get(address).call(
            {
              case: "registerBroker",
              value: create(RegisterBrokerRequestSchema, {
                brokerId: this.opts.brokerId,
                address: this.opts.address,
                fsyncPolicy: this.opts.fsyncPolicy,
                version: this.opts.version,
              }),
            },
            { timeoutMs: CALL_TIMEOUT_MS },
          ),
          "registerBrokerResponse",
        );
        this.keepAliveMs = res.keepAliveIntervalMs || DEFAULT_KEEP_ALIVE_MS;
        this.deltas = res.acceptsDeltaReports;
        this.registered = true;
        this.needFull = true;
        this.log.info("registered", { sentinel: address, keepAliveMs: this.keepAliveMs });
      }
      const report = this.opts.report({
        full: this.needFull || this.beatsSinceFull >= (this.deltas ? FULL_REPORT_EVERY_BEATS_WITH_DELTAS : FULL_REPORT_EVERY_BEATS),
        deltas: this.deltas,
        nowMs: performance.now(),
      });
      // Until the sentinel takes this report (no answer, or it asks for a full one), it holds none that a
      // delta could build on: the next report then carries everything.
      this.needFull = true;
      const unchanged = !report.full && report.partitions.length === 0;
      const res = expectCase(
        await this.pool.get(address).call(
          {
            case: "keepAlive",
            value: create(KeepAliveRequestSchema, {
              brokerId: this.opts.brokerId,
              address: this.opts.address,
              fsyncPolicy: this.opts.fsyncPolicy,
              storageError: this.opts.storageError?.() ?? "",
              highestProducerId: BigInt(this.opts.highestProducerId?.() ?? 0),
              ...(unchanged ? { unchanged: true } : { partitions: report.partitions, delta: !report.full }),
            }),
          },
          { timeoutMs: CALL_TIMEOUT_MS },
        ),
        "keepAliveResponse",
      );
      if (!res.sendFull) {
        report.taken();
        this.needFull = false;
        this.beatsSinceFull = report.full ? 0 : this.beatsSinceFull + 1;
      }
      this.failures = 0;
      this.schedule(this.keepAliveMs);
    } catch (e) {
      this.failures++;
      if (e instanceof WireError && e.code === ErrorCode.UNKNOWN_BROKER) {
        this.registered = false;
        this.log.info("re-registering", { sentinel: address });
        this.schedule(0);
        return;
      }
      if (e instanceof WireError && e.code === ErrorCode.NOT_SENTINEL_LEADER && e.leaderAddress) {
        this.leaderHint = e.leaderAddress;
        this.registered = false;
        this.schedule(0);
        return;
      }
      if (e instanceof WireError && e.code === ErrorCode.DUPLICATE_BROKER) {
        this.log.error("sentinel refused registration", { sentinel: address, error: e.message });
      } else if (this.failures === 1 || this.failures % 50 === 0) {
        this.log.warn("sentinel unreachable", { sentinel: address, error: (e as Error).message, failures: this.failures });
      }
      // Try the next sentinel; a restarted one will have forgotten us, so register again there.
      this.leaderHint = undefined;
      this.current++;
      if (this.opts.sentinels.length > 1) this.registered = false;
      this.schedule(Math.min(BACKOFF_MAX_MS, this.keepAliveMs * Math.min(this.failures, 5)));
    }
  }

  /**
   * The map's view of a topic, asked of the sentinel this session beats to (the leader, once found):
   * undefined when the map has no such topic. Throws when no sentinel answers.
   */
  async describeTopic(name: string): Promise<TopicMetadata | undefined> {
    const res = await this.pool
      .get(this.target())
      .call({ case: "describeTopic", value: create(DescribeTopicRequestSchema, { name }) }, { timeoutMs: CALL_TIMEOUT_MS });
    try {
      return expectCase(res, "describeTopicResponse").topic;
    } catch (e) {
      if (e instanceof WireError && e.code === ErrorCode.UNKNOWN_TOPIC) return undefined;
      throw e;
    }
  }

  /** Stops beating without a goodbye. */
  halt(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** Best effort: tell the sentinel we leave on purpose, so it fails over at once instead of waiting. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    try {
      await this.pool.get(this.target()).call(
        { case: "unregisterBroker", value: create(UnregisterBrokerRequestSchema, { brokerId: this.opts.brokerId }) },
        { timeoutMs: 1_000 },
      );
    } catch {
      // the sentinel will notice the silence instead
    }
  }
}
