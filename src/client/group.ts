import { create } from "@bufbuild/protobuf";
import { ErrorCode, GroupHeartbeatRequestSchema, JoinGroupRequestSchema, LeaveGroupRequestSchema } from "../proto/goulette_pb";
import { backoffMs, sleep } from "./backoff";
import { codeOf } from "./errors";
import type { SentinelClient } from "./sentinel-client";

export interface GroupCallbacks {
  /** Before a rebalance takes partitions away: commit what was consumed. */
  onRevoke(): Promise<void>;
  onAssign(partitions: { topic: string; partition: number }[]): Promise<void>;
  onFatal(err: Error): void;
}

/** Codes after which this member must join again (its generation or membership is no longer current). */
const rejoinCodes = new Set<ErrorCode>([ErrorCode.REBALANCE_IN_PROGRESS, ErrorCode.ILLEGAL_GENERATION, ErrorCode.UNKNOWN_MEMBER, ErrorCode.UNKNOWN_GROUP]);

/**
 * Membership of one consumer group, coordinated by the sentinel: join, heartbeat at the interval the
 * sentinel asks for, join again when it says the group is rebalancing, leave on stop.
 */
export class GroupMember {
  memberId = "";
  generation = 0;
  private running = false;
  private loop: Promise<void> | undefined;
  private wakeLoop: (() => void) | undefined;

  constructor(
    private readonly sentinel: SentinelClient,
    readonly groupId: string,
    readonly topics: string[],
    readonly sessionTimeoutMs: number,
    private readonly callbacks: GroupCallbacks,
  ) {}

  /** Joins and applies the first assignment; the heartbeat loop then runs in the background. */
  async start(): Promise<void> {
    if (this.running) throw new Error("group member already started");
    this.running = true;
    const interval = await this.join();
    this.loop = this.heartbeatLoop(interval);
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.wakeLoop?.();
    await this.loop;
    if (this.memberId) {
      await this.sentinel
        .request({ case: "leaveGroup", value: create(LeaveGroupRequestSchema, { groupId: this.groupId, memberId: this.memberId }) }, "leaveGroupResponse", 2000)
        .catch(() => {});
    }
  }

  /** Joins until the sentinel hands out a generation; returns the heartbeat interval it asked for. */
  private async join(): Promise<number> {
    for (let attempt = 0; this.running; attempt++) {
      try {
        const r = await this.sentinel.request(
          {
            case: "joinGroup",
            value: create(JoinGroupRequestSchema, {
              groupId: this.groupId,
              memberId: this.memberId,
              topics: this.topics,
              sessionTimeoutMs: this.sessionTimeoutMs,
            }),
          },
          "joinGroupResponse",
        );
        this.memberId = r.memberId;
        this.generation = r.generation;
        const parts = r.assignment.flatMap((a) => a.partitions.map((partition) => ({ topic: a.topic, partition })));
        await this.callbacks.onAssign(parts);
        return r.heartbeatIntervalMs > 0 ? r.heartbeatIntervalMs : Math.max(100, Math.floor(this.sessionTimeoutMs / 3));
      } catch (err) {
        const code = codeOf(err);
        if (code === ErrorCode.UNKNOWN_MEMBER) this.memberId = "";
        if (!rejoinCodes.has(code) && code !== ErrorCode.TIMEOUT && code !== ErrorCode.UNKNOWN && code !== ErrorCode.LEADER_NOT_AVAILABLE) {
          throw err;
        }
        await sleep(backoffMs(attempt, 50, 1000));
      }
    }
    return 0;
  }

  private async heartbeatLoop(intervalMs: number): Promise<void> {
    let interval = intervalMs;
    while (this.running) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, interval);
        this.wakeLoop = () => { clearTimeout(t); resolve(); };
      });
      if (!this.running) return;
      try {
        await this.sentinel.request(
          {
            case: "groupHeartbeat",
            value: create(GroupHeartbeatRequestSchema, { groupId: this.groupId, memberId: this.memberId, generation: this.generation }),
          },
          "groupHeartbeatResponse",
          Math.max(500, interval),
        );
      } catch (err) {
        const code = codeOf(err);
        if (!rejoinCodes.has(code)) continue; // a lost heartbeat: the session timeout allows for a few
        if (code === ErrorCode.UNKNOWN_MEMBER || code === ErrorCode.UNKNOWN_GROUP) this.memberId = "";
        try {
          await this.callbacks.onRevoke();
          interval = await this.join();
        } catch (e) {
          this.callbacks.onFatal(e instanceof Error ? e : new Error(String(e)));
          return;
        }
      }
    }
  }
}
