// Topic set-up for suites that drive the cluster themselves: create, then wait until every partition has
// a leader the sentinel knows of, so measurements start on a cluster that is ready to take writes.
import { Admin, type TopicInfo } from "../../src/client/admin";
import { codeOf } from "../../src/client/errors";
import { ErrorCode } from "../../src/proto/goulette_pb";

export async function createTopicWithLeaders(
  sentinel: string,
  name: string,
  partitions: number,
  replicas: number,
  withinMs: number,
): Promise<TopicInfo> {
  // A sentinel busy placing a thousand partitions answers slowly: wait for it rather than fail the suite.
  const admin = new Admin({ sentinels: [sentinel], sentinelTimeoutMs: 30_000 });
  const deadline = Date.now() + withinMs;
  try {
    for (;;) {
      try {
        await admin.createTopic(name, { partitions, replicas });
        break;
      } catch (e) {
        const code = codeOf(e);
        if (code === ErrorCode.TOPIC_EXISTS) break;
        // NOT_ENOUGH_BROKERS: brokers still registering; the others: a busy or unreachable sentinel.
        const transient = [ErrorCode.NOT_ENOUGH_BROKERS, ErrorCode.TIMEOUT, ErrorCode.UNKNOWN, ErrorCode.SHUTTING_DOWN].includes(code);
        if (!transient || Date.now() > deadline) throw e;
        await Bun.sleep(200);
      }
    }
    return await waitLeaders(admin, name, deadline);
  } finally {
    await admin.close();
  }
}

export async function describe(sentinel: string, name: string): Promise<TopicInfo> {
  const admin = new Admin({ sentinels: [sentinel], sentinelTimeoutMs: 10_000 });
  try {
    return await admin.describeTopic(name);
  } finally {
    await admin.close();
  }
}

async function waitLeaders(admin: Admin, name: string, deadline: number): Promise<TopicInfo> {
  for (;;) {
    const t = await admin.describeTopic(name).catch(() => undefined);
    const led = t ? t.partitionInfo.filter((p) => p.leader !== 0).length : 0;
    if (t && led === t.partitions) return t;
    if (Date.now() > deadline) throw new Error(`topic ${name}: ${led} of ${t?.partitions ?? "?"} partitions have a leader`);
    await Bun.sleep(250);
  }
}
