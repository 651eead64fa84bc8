// Consumer group coordinator: membership, generations and range assignment, as a pure state machine fed
// the current time. Kept in memory, not in the replicated map: membership is soft state that members
// rebuild by re-joining (a restarted or new leader sentinel answers UNKNOWN_MEMBER and they join again),
// while committed offsets, the state that matters, live in the partitions' own Raft groups on brokers.
//
// Protocol (simpler than Kafka's two-phase join/sync, one round trip): a join or a departure starts a new
// generation with a fresh assignment; a member whose heartbeat carries an older generation gets
// REBALANCE_IN_PROGRESS, re-joins with its member id and receives its share for the current generation.

export const MAX_GROUPS = 10_000;
export const MAX_MEMBERS_PER_GROUP = 1_000;
export const MAX_TOPICS_PER_MEMBER = 100;
export const MIN_SESSION_TIMEOUT_MS = 100;
export const MAX_SESSION_TIMEOUT_MS = 300_000;
export const DEFAULT_SESSION_TIMEOUT_MS = 10_000;

export interface Assignment {
  topic: string;
  partitions: number[];
}

export type GroupErrorCode = "UNKNOWN_GROUP" | "UNKNOWN_MEMBER" | "REBALANCE_IN_PROGRESS" | "ILLEGAL_GENERATION" | "INVALID_ARGUMENT";

export type GroupResult<T> = { ok: true; value: T } | { ok: false; code: GroupErrorCode; message: string };

interface Member {
  id: string;
  topics: string[];
  sessionTimeoutMs: number;
  lastSeenMs: number;
}

interface Group {
  id: string;
  generation: number;
  members: Map<string, Member>;
  assignment: Map<string, Assignment[]>; // member id -> its share in the current generation
}

export interface JoinResult {
  memberId: string;
  generation: number;
  assignment: Assignment[];
  heartbeatIntervalMs: number;
}

/** Partition count of a topic, or undefined when it does not exist (its members then get nothing of it). */
export type PartitionCount = (topic: string) => number | undefined;

export class GroupCoordinator {
  private readonly groups = new Map<string, Group>();
  private nextMember = 1;

  constructor(
    private readonly partitionCount: PartitionCount,
    private readonly memberPrefix = "m",
  ) {}

  join(
    groupId: string,
    memberId: string,
    topics: string[],
    sessionTimeoutMs: number,
    nowMs: number,
  ): GroupResult<JoinResult> {
    if (groupId.length === 0 || groupId.length > 255) return bad("group id must be 1-255 characters");
    if (topics.length === 0 || topics.length > MAX_TOPICS_PER_MEMBER) {
      return bad(`a member subscribes to 1-${MAX_TOPICS_PER_MEMBER} topics`);
    }
    const timeout = sessionTimeoutMs === 0 ? DEFAULT_SESSION_TIMEOUT_MS : sessionTimeoutMs;
    if (timeout < MIN_SESSION_TIMEOUT_MS || timeout > MAX_SESSION_TIMEOUT_MS) {
      return bad(`session timeout must be in [${MIN_SESSION_TIMEOUT_MS}, ${MAX_SESSION_TIMEOUT_MS}] ms`);
    }
    let group = this.groups.get(groupId);
    if (!group) {
      if (this.groups.size >= MAX_GROUPS) return bad(`at most ${MAX_GROUPS} groups`);
      group = { id: groupId, generation: 0, members: new Map(), assignment: new Map() };
      this.groups.set(groupId, group);
    }
    const sortedTopics = [...new Set(topics)].sort();
    let member = memberId ? group.members.get(memberId) : undefined;
    if (memberId && !member) {
      // Unknown id (expired, or the coordinator restarted): treat as a new member rather than refuse, so a
      // consumer recovers in one round trip.
      memberId = "";
    }
    let changed = false;
    if (!member) {
      if (group.members.size >= MAX_MEMBERS_PER_GROUP) return bad(`at most ${MAX_MEMBERS_PER_GROUP} members per group`);
      member = { id: `${this.memberPrefix}-${this.nextMember++}`, topics: sortedTopics, sessionTimeoutMs: timeout, lastSeenMs: nowMs };
      group.members.set(member.id, member);
      changed = true;
    } else {
      if (member.topics.join("\0") !== sortedTopics.join("\0")) changed = true;
      member.topics = sortedTopics;
      member.sessionTimeoutMs = timeout;
      member.lastSeenMs = nowMs;
    }
    if (changed || group.generation === 0) this.rebalance(group);
    return {
      ok: true,
      value: {
        memberId: member.id,
        generation: group.generation,
        assignment: group.assignment.get(member.id) ?? [],
        heartbeatIntervalMs: Math.max(50, Math.floor(timeout / 3)),
      },
    };
  }

  heartbeat(groupId: string, memberId: string, generation: number, nowMs: number): GroupResult<void> {
    const group = this.groups.get(groupId);
    if (!group) return { ok: false, code: "UNKNOWN_GROUP", message: `group "${groupId}" has no members` };
    const member = group.members.get(memberId);
    if (!member) return { ok: false, code: "UNKNOWN_MEMBER", message: `member "${memberId}" is not in group "${groupId}"` };
    member.lastSeenMs = nowMs;
    if (generation !== group.generation) {
      return {
        ok: false,
        code: "REBALANCE_IN_PROGRESS",
        message: `group "${groupId}" is at generation ${group.generation}; join again`,
      };
    }
    return { ok: true, value: undefined };
  }

  leave(groupId: string, memberId: string): GroupResult<void> {
    const group = this.groups.get(groupId);
    if (!group) return { ok: false, code: "UNKNOWN_GROUP", message: `group "${groupId}" has no members` };
    if (!group.members.delete(memberId)) {
      return { ok: false, code: "UNKNOWN_MEMBER", message: `member "${memberId}" is not in group "${groupId}"` };
    }
    this.afterDeparture(group);
    return { ok: true, value: undefined };
  }

  /** Removes members silent past their session timeout; returns who was removed, as "group/member". */
  expire(nowMs: number): string[] {
    const removed: string[] = [];
    for (const group of [...this.groups.values()]) {
      let any = false;
      for (const m of [...group.members.values()]) {
        if (nowMs - m.lastSeenMs > m.sessionTimeoutMs) {
          group.members.delete(m.id);
          removed.push(`${group.id}/${m.id}`);
          any = true;
        }
      }
      if (any) this.afterDeparture(group);
    }
    return removed;
  }

  /** Topics changed (created, deleted, repartitioned): groups reading them get a new assignment. */
  topicsChanged(topics: string[]): void {
    const set = new Set(topics);
    for (const group of this.groups.values()) {
      if ([...group.members.values()].some((m) => m.topics.some((t) => set.has(t)))) this.rebalance(group);
    }
  }

  describe(groupId: string): { generation: number; members: Record<string, Assignment[]> } | undefined {
    const group = this.groups.get(groupId);
    if (!group) return undefined;
    return { generation: group.generation, members: Object.fromEntries(group.assignment) };
  }

  private afterDeparture(group: Group): void {
    if (group.members.size === 0) this.groups.delete(group.id);
    else this.rebalance(group);
  }

  /** Range assignment: per topic, members reading it (sorted by id) get contiguous runs of partitions. */
  private rebalance(group: Group): void {
    group.generation++;
    group.assignment = new Map([...group.members.keys()].map((id) => [id, []]));
    const topics = new Set([...group.members.values()].flatMap((m) => m.topics));
    for (const topic of [...topics].sort()) {
      const count = this.partitionCount(topic) ?? 0;
      const readers = [...group.members.values()]
        .filter((m) => m.topics.includes(topic))
        .map((m) => m.id)
        .sort(compareMemberIds);
      const per = Math.floor(count / readers.length);
      const extra = count % readers.length;
      let next = 0;
      readers.forEach((id, i) => {
        const n = per + (i < extra ? 1 : 0);
        if (n === 0) return;
        const partitions = Array.from({ length: n }, (_, k) => next + k);
        next += n;
        group.assignment.get(id)!.push({ topic, partitions });
      });
      if (next !== count) throw new Error(`range assignment covered ${next} of ${count} partitions of ${topic}`);
    }
  }
}

/** Member ids are "<prefix>-<n>": order by n so assignment is stable as members come and go. */
function compareMemberIds(a: string, b: string): number {
  const na = Number(a.slice(a.lastIndexOf("-") + 1));
  const nb = Number(b.slice(b.lastIndexOf("-") + 1));
  return na - nb || (a < b ? -1 : a > b ? 1 : 0);
}

function bad(message: string): { ok: false; code: "INVALID_ARGUMENT"; message: string } {
  return { ok: false, code: "INVALID_ARGUMENT", message };
}
