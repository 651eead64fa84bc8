// Raft traffic to other brokers: one connection per peer (from the shared pool) carries the messages of
// every group the two brokers share, and everything queued for one peer in one pump cycle leaves as ONE
// RaftBatch frame. Raft tolerates loss, so a peer that is down simply misses messages; the core retries.
import type { ClientPool } from "../wire";
import type { Message, NodeId } from "../raft/types";
import { encodeRaftFrame, type GroupMessage } from "./raft-codec";

export class PeerTransport {
  private addresses = new Map<NodeId, string>();
  private outbox = new Map<NodeId, GroupMessage[]>();

  constructor(
    readonly selfId: NodeId,
    private pool: ClientPool,
  ) {}

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
   * Sends one frame per peer with everything queued for it: into the socket now when `now`, else at the
   * end of the current turn (with anything else queued for that peer meanwhile).
   */
  flush(now = false): void {
    for (const [to, msgs] of this.outbox) {
      const address = this.addresses.get(to);
      if (!address || msgs.length === 0) continue;
      const client = this.pool.get(address);
      client.sendEncoded(encodeRaftFrame(this.selfId, to, msgs));
      if (now) client.flushNow();
    }
    this.outbox.clear();
  }
}
