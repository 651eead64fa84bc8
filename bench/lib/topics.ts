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
  const admin = new Admin({ sentinels: [sentinel] });
  const deadline = Date.now() + withinMs;
  try {
    for (;;) {
      try {
        await admin.createTopic(name, { partitions, replicas });
        break;
      } catch (e) {
        const code = codeOf(e);
        if (code === ErrorCode.TOPIC_EXISTS) break;
        if (code !== ErrorCode.NOT_ENOUGH_BROKERS || Date.now() > deadline) throw e;
        await Bun.sleep(200);
      }
    }
    return await waitLeaders(admin, name, deadline);
  } finally {
    await admin.close();
  }
}

export async function describe(sentinel: string, name: string): Promise<TopicInfo> {
  const admin = new Admin({ sentinels: [sentinel] });
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
