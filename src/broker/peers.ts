// Raft traffic to other brokers: one connection per peer (from the shared pool) carries the messages of
// every group the two brokers share, and everything queued for one peer in one pump cycle leaves as one
// RaftBatch frame, or as several in order when it would not fit the peer's frame limit. Raft tolerates
// loss, so a peer that is down simply misses messages; the core retries.
import type { EncodedFrame } from "../wire";
import type { Message, NodeId } from "../raft/types";
import { encodeRaftFrame, type GroupMessage } from "./raft-codec";

/** What the transport needs of a connection pool (src/wire's ClientPool). */
export interface PeerPool {
  get(address: string): { sendEncoded(frame: EncodedFrame): void; flushNow(): void };
}

/** Room left in a frame for what is not entry data (message fields, entry headers). */
const FRAME_HEADROOM_BYTES = 64 * 1024;
/**
 * Upper bounds of encoded sizes (every varint at its 10-byte maximum, plus tags and length prefixes): a
 * message's own fields, one entry's header, one member id of a snapshot's membership.
 */
const MESSAGE_OVERHEAD_BYTES = 192;
const ENTRY_OVERHEAD_BYTES = 64;
const MEMBER_BYTES = 12;

function maxEncodedBytes(m: Message): number {
  let n = MESSAGE_OVERHEAD_BYTES + (m.context?.length ?? 0);
  if (m.snapshot) n += m.snapshot.data.length + MEMBER_BYTES * (m.snapshot.conf.voters.length + m.snapshot.conf.learners.length);
  for (const e of m.entries) n += ENTRY_OVERHEAD_BYTES + e.data.length;
  return n;
}

export class PeerTransport {
  private addresses = new Map<NodeId, string>();
  private outbox = new Map<NodeId, GroupMessage[]>();

  /** Entry bytes one frame may carry: a peer refuses (and drops the connection of) a frame above its limit. */
  private readonly frameBudget: number;

  constructor(
    readonly selfId: NodeId,
    private pool: PeerPool,
    maxFrameBytes: number,
  ) {
    this.frameBudget = Math.max(maxFrameBytes - FRAME_HEADROOM_BYTES, maxFrameBytes / 2);
  }

  setAddress(id: NodeId, address: string): void {
    if (id !== this.selfId && address) this.addresses.set(id, address);
  }

  addressOf(id: NodeId): string | undefined {
    return this.addresses.get(id);
  }

  queue(group: number, msg: Message): void {
    let q = this.outbox.get(msg.to);
    if (!q) this.outbox.set(msg.to, (q = []));
    q.push({ group, msg });
  }

  /**
   * An empty frame to every known peer: it says "this broker is alive" for the groups it leads that sleep
   * (quiesced groups send no heartbeats), at a cost per peer instead of per group.
   */
  ping(): void {
    for (const [to, address] of this.addresses) {
      if (!this.outbox.get(to)?.length) this.pool.get(address).sendEncoded(encodeRaftFrame(this.selfId, to, []));
    }
  }

  /**
   * Sends everything queued for each peer, in order, in as few frames as its frame limit allows (a leader
   * of many busy partitions can have more than one frame's worth of Appends for a peer in one round): into
   * the socket now when `now`, else at the end of the current turn.
   */
  flush(now = false): void {
    for (const [to, msgs] of this.outbox) {
      const address = this.addresses.get(to);
      if (!address || msgs.length === 0) continue;
      const client = this.pool.get(address);
      let start = 0;
      let bytes = 0;
      for (let i = 0; i < msgs.length; i++) {
        const size = maxEncodedBytes(msgs[i]!.msg);
        if (i > start && bytes + size > this.frameBudget) {
          client.sendEncoded(encodeRaftFrame(this.selfId, to, msgs.slice(start, i)));
          start = i;
          bytes = 0;
        }
        bytes += size;
      }
      client.sendEncoded(encodeRaftFrame(this.selfId, to, start === 0 ? msgs : msgs.slice(start)));
      if (now) client.flushNow();
    }
    this.outbox.clear();
  }
}
