// The Goulette client library: Producer, Consumer and Admin for TypeScript users.
//
//   const admin = new Admin({ sentinels: ["127.0.0.1:7070"] });
//   await admin.createTopic("orders", { partitions: 3, replicas: 3 });
//   const producer = new Producer({ sentinels: ["127.0.0.1:7070"] });
//   const [{ partition, offset }] = await producer.send("orders", [{ key: "user-7", value: "hello" }]);
//   const consumer = new Consumer({ sentinels: ["127.0.0.1:7070"], groupId: "billing", defaultFrom: "beginning" });
//   await consumer.subscribe(["orders"]);
//   for await (const m of consumer) console.log(m.partition, m.offset, new TextDecoder().decode(m.value));
export {
  Admin,
  type ClientOptions,
  type TopicInfo,
  type PartitionInfo,
  type ClusterStatus,
  type ClusterMetadata,
  type BrokerStatusInfo,
} from "./admin";
export { Producer, type ProducerOptions, type ProducerMessage, type RecordMetadata, type PartitionSendState } from "./producer";
export {
  Consumer,
  type ConsumerOptions,
  type ConsumedMessage,
  type Assignment,
  type StartFrom,
  type TopicPartitionOffset,
} from "./consumer";
export { ClientError, WireError, describeError } from "./errors";
export { Partitioner, keyPartition } from "./partitioner";
export type { Header } from "./records";
export type { Transport } from "./transport";
export { ErrorCode } from "../proto/goulette_pb";
