// Broker health as a pure state machine of silences: healthy -> suspicious -> down. No timers here; the
// server feeds it beats and the current time and acts on the transitions it returns.
//
// Why these defaults (options.ts): brokers beat every 200 ms. Suspicious after 600 ms (three missed beats)
// absorbs a GC pause or a busy event loop without alarm; suspicious brokers are still used but reported.
// Down after 1500 ms (about seven missed beats) starts failover. Raft among the brokers elects a new
// partition leader on its own in ~100-200 ms, so producers never wait for the sentinel to declare a broker
// down; the sentinel's silence only decides when to spend disk and network re-replicating, and 1.5 s keeps
// a `dev` cluster back to full replication within a couple of seconds without flapping on a slow beat.

import type { BrokerId } from "./ring";

export type Health = "healthy" | "suspicious" | "down" | "left";

export interface HealthConfig {
  suspiciousAfterMs: number;
  downAfterMs: number;
}

export interface HealthTransition {
  broker: BrokerId;
  from: Health;
  to: Health;
  silentMs: number;
}

interface Entry {
  health: Health;
  lastSeenMs: number;
  /** When it last became healthy (first beat, or back from suspicious, down or left). */
  healthySinceMs: number;
}

export class HealthTracker {
  private readonly entries = new Map<BrokerId, Entry>();

  constructor(private readonly config: HealthConfig) {
    if (!(config.suspiciousAfterMs > 0 && config.downAfterMs > config.suspiciousAfterMs)) {
      throw new Error(
        `need 0 < suspiciousAfterMs < downAfterMs, got ${config.suspiciousAfterMs} and ${config.downAfterMs}`,
      );
    }
  }

  /** A registration or keep-alive. Returns the transition when the broker was not healthy before. */
  beat(broker: BrokerId, nowMs: number): HealthTransition | undefined {
    const e = this.entries.get(broker);
    if (!e) {
      this.entries.set(broker, { health: "healthy", lastSeenMs: nowMs, healthySinceMs: nowMs });
      return undefined;
    }
    const from = e.health;
    const silentMs = nowMs - e.lastSeenMs;
    e.lastSeenMs = Math.max(e.lastSeenMs, nowMs);
    if (from !== "healthy") e.healthySinceMs = nowMs;
    e.health = "healthy";
    return from === "healthy" ? undefined : { broker, from, to: "healthy", silentMs };
  }

  /** Graceful unregister: the broker is gone on purpose and will not be waited for. */
  leave(broker: BrokerId): HealthTransition | undefined {
    const e = this.entries.get(broker);
    if (!e || e.health === "left") return undefined;
    const from = e.health;
    e.health = "left";
    return { broker, from, to: "left", silentMs: 0 };
  }

  /** The sentinel's own probe failed after a client reported the broker unreachable. */
  markDown(broker: BrokerId, nowMs: number): HealthTransition | undefined {
    const e = this.entries.get(broker);
    if (!e || e.health === "down" || e.health === "left") return undefined;
    const from = e.health;
    e.health = "down";
    return { broker, from, to: "down", silentMs: nowMs - e.lastSeenMs };
  }

  /**
   * This process was paused (event loop stalled, machine overloaded, SIGSTOP) for `ms`: beats that were
   * sent meanwhile are still queued, unread. Credit every live broker with that time rather than blame
   * them all for our own silence.
   */
  forgive(ms: number): void {
    if (!(ms > 0)) return;
    for (const e of this.entries.values()) if (e.health !== "down" && e.health !== "left") e.lastSeenMs += ms;
  }

  forget(broker: BrokerId): void {
    this.entries.delete(broker);
  }

  /** Moves brokers along by how long they have been silent; returns what changed, in broker order. */
  evaluate(nowMs: number): HealthTransition[] {
    const out: HealthTransition[] = [];
    for (const [broker, e] of [...this.entries].sort((a, b) => a[0] - b[0])) {
      if (e.health === "left" || e.health === "down") continue;
      const silentMs = nowMs - e.lastSeenMs;
      const next: Health =
        silentMs >= this.config.downAfterMs ? "down" : silentMs >= this.config.suspiciousAfterMs ? "suspicious" : "healthy";
      if (next !== e.health) {
        out.push({ broker, from: e.health, to: next, silentMs });
        if (next === "healthy") e.healthySinceMs = nowMs;
        e.health = next;
      }
    }
    return out;
  }

  known(broker: BrokerId): boolean {
    return this.entries.has(broker);
  }

  health(broker: BrokerId): Health | undefined {
    return this.entries.get(broker)?.health;
  }

  lastSeenMs(broker: BrokerId): number | undefined {
    return this.entries.get(broker)?.lastSeenMs;
  }

  /** How long the broker has been healthy without a break; undefined when it is not healthy now. */
  healthyForMs(broker: BrokerId, nowMs: number): number | undefined {
    const e = this.entries.get(broker);
    return e?.health === "healthy" ? nowMs - e.healthySinceMs : undefined;
  }

  /** Usable for placement: up and beating on time. Suspicious brokers keep their replicas but get no new ones. */
  isHealthy(broker: BrokerId): boolean {
    return this.entries.get(broker)?.health === "healthy";
  }

  isAlive(broker: BrokerId): boolean {
    const h = this.entries.get(broker)?.health;
    return h === "healthy" || h === "suspicious";
  }
}
