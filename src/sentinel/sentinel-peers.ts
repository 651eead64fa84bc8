// Raft traffic between sentinels that replicate the map: everything one sentinel sends another in one
// pump round travels as one one-way RaftBatch frame (the same framing and codec brokers use).

import type { Logger } from "../log";
import type { RaftBatch } from "../proto/goulette_pb";
import { encodeRaftBatch, decodeRaftBatch } from "../broker/raft-codec";
import type { Message, NodeId } from "../raft/types";
import { ClientPool } from "../wire";
import { MAP_GROUP } from "./raft-map-store";

export const MAX_MESSAGES_PER_BATCH = 4_096;

export class SentinelPeers {
  private readonly pool: ClientPool;

  constructor(
    private readonly self: NodeId,
    private readonly addresses: string[], // index i is sentinel i+1
    maxFrameBytes: number,
    private readonly log: Logger,
  ) {
    if (self < 1 || self > addresses.length) throw new Error(`sentinel id ${self} is not in 1..${addresses.length}`);
    this.pool = new ClientPool({ maxFrameBytes, connectTimeoutMs: 500, backoffMaxMs: 500 });
  }

  get voters(): NodeId[] {
    return this.addresses.map((_, i) => i + 1);
  }

  address(id: NodeId): string | undefined {
    return this.addresses[id - 1];
  }

  send(messages: Message[]): void {
    const byPeer = new Map<NodeId, Message[]>();
    for (const m of messages) {
      if (m.to === this.self || !this.address(m.to)) continue;
      let list = byPeer.get(m.to);
      if (!list) byPeer.set(m.to, (list = []));
      list.push(m);
    }
    for (const [to, list] of byPeer) {
      try {
        const batch = encodeRaftBatch(this.self, to, list.map((msg) => ({ group: MAP_GROUP, msg })));
        this.pool.get(this.address(to)!).send({ case: "raft", value: batch });
      } catch (e) {
        // Raft retries whatever is lost; a peer that is down just misses this round.
        this.log.debug("sentinel raft send failed", { to, error: String(e) });
      }
    }
  }

  /** Messages of a received batch meant for the map group and this sentinel; anything else is dropped. */
  receive(batch: RaftBatch): Message[] {
    if (batch.to !== this.self || batch.from === this.self || !this.address(batch.from)) return [];
    if (batch.messages.length + batch.heartbeats.length > MAX_MESSAGES_PER_BATCH) return [];
    return decodeRaftBatch(batch)
      .filter((g) => g.group === MAP_GROUP && g.msg.from === batch.from && g.msg.to === this.self)
      .map((g) => g.msg);
  }

  close(): void {
    this.pool.closeAll();
  }
}
