// The Goulette client library: Producer, Consumer and Admin for TypeScript users.
export {
  Admin,
  type ClientOptions,
  type TopicInfo,
  type PartitionInfo,
  type ClusterStatus,
  type ClusterMetadata,
  type BrokerStatusInfo,
} from "./admin";
export { Producer, type ProducerOptions, type ProducerMessage, type RecordMetadata } from "./producer";
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
