// Where the sentinel's hash ring (its default virtual nodes) places each partition of a topic among
// brokers: where tests expect the map to end once replicas have moved back (balance).
import { sentinelDefaults } from "../src/sentinel/options";
import { HashRing, partitionKey } from "../src/sentinel/ring";

/** A replica set as text, ids in ascending order: "1,2,4". */
export function replicaSet(ids: Iterable<number>): string {
  return [...ids].sort((a, b) => a - b).join(",");
}

/** Each partition's ring placement among `brokers`, as replicaSet text, index = partition. */
export function ringPlacement(brokers: number[], topic: string, partitions: number, replicas: number): string[] {
  const ring = new HashRing(sentinelDefaults.virtualNodes);
  for (const b of brokers) ring.add(b);
  return Array.from({ length: partitions }, (_, p) => replicaSet(ring.replicas(partitionKey(topic, p), replicas)));
}
