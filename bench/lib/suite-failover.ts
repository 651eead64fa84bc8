// "failover": kill -9 the leader of a partition while a producer keeps WINDOW messages in flight, and
// time the first acknowledgement after the kill (any, and of a message sent after the kill, which the
// old leader cannot have acknowledged), and when the sentinel names a new leader.
import { Cluster } from "./cluster";
import { emit, errorText, progress, round } from "./emit";
import { Load } from "./load";
import { type RunSettings } from "./settings";
import { createTopicWithLeaders, describe } from "./topics";

const replicas = 3;
const size = 1024;
const window = 32;
const giveUpMs = 60_000;

export async function failoverSuite(s: RunSettings): Promise<void> {
  const runs = s.scale >= 1 ? 5 : s.scale >= 0.1 ? 3 : 1;
  const cluster = await Cluster.start({ mode: "direct" });
  try {
    await createTopicWithLeaders(cluster.sentinel, "failover", 1, replicas, 60_000);
    for (let run = 1; run <= runs; run++) {
      try {
        await once(cluster, run);
      } catch (e) {
        emit({ suite: "failover", run, error: errorText(e), cluster_log: cluster.notableLog() });
      }
    }
  } finally {
    await cluster.stop();
  }
}

async function once(cluster: Cluster, run: number): Promise<void> {
  const load = new Load({ sentinel: cluster.sentinel, topic: "failover", size, window, partitions: 1, deliveryTimeoutMs: giveUpMs });
  let killAt = Number.POSITIVE_INFINITY;
  let firstAckMs: number | undefined;
  let firstFreshAckMs: number | undefined;
  let ackedBeforeKill = 0;
  load.onAck = (a) => {
    if (a.ackedAtMs < killAt) return;
    firstAckMs ??= a.ackedAtMs - killAt;
    if (a.sentAtMs > killAt) firstFreshAckMs ??= a.ackedAtMs - killAt;
  };
  try {
    load.start();
    await Bun.sleep(2000);
    if (load.acked === 0) throw new Error(`no acknowledgement before the kill: ${errorText(load.firstError)}`);
    const before = await describe(cluster.sentinel, "failover");
    const leaderId = before.partitionInfo[0]?.leader ?? 0;
    if (leaderId === 0) throw new Error("the sentinel knows no leader to kill");
    progress(`failover run ${run}: kill -9 broker ${leaderId} (leader) at ${load.acked} acks`);
    ackedBeforeKill = load.acked;
    killAt = performance.now();
    cluster.killBroker(leaderId);

    let newLeader = 0;
    let sentinelMs: number | undefined;
    while (performance.now() - killAt < giveUpMs && (firstFreshAckMs === undefined || sentinelMs === undefined)) {
      if (sentinelMs === undefined) {
        const t = await describe(cluster.sentinel, "failover").catch(() => undefined);
        const l = t?.partitionInfo[0]?.leader ?? 0;
        if (l !== 0 && l !== leaderId) {
          newLeader = l;
          sentinelMs = performance.now() - killAt;
        }
      }
      await Bun.sleep(20);
    }
    await Bun.sleep(1000); // keep producing on the new leader a moment: the figures must not be a fluke
    await load.stop();
    emit({
      suite: "failover",
      run,
      replicas,
      size,
      window,
      killed_leader: leaderId,
      new_leader: newLeader,
      first_ack_after_kill_ms: firstAckMs === undefined ? null : round(firstAckMs, 1),
      first_ack_of_message_sent_after_kill_ms: firstFreshAckMs === undefined ? null : round(firstFreshAckMs, 1),
      sentinel_new_leader_ms: sentinelMs === undefined ? null : round(sentinelMs, 1),
      acked_before_kill: ackedBeforeKill,
      acked_total: load.acked,
      failed: load.failed,
      ...(load.failed > 0 ? { first_error: errorText(load.firstError) } : {}),
    });
  } finally {
    await load.close();
    // Bring the killed broker back so the next run has three replicas again.
    for (const b of cluster.brokers) {
      if (b.child && b.child.proc.exitCode === null && b.child.proc.signalCode === null) continue;
      progress(`failover: restarting broker ${b.id}`);
      await cluster.restartBroker(b.id);
    }
    await cluster.waitHealthy(cluster.brokers.length, 60_000);
  }
}
