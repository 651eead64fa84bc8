export { serve, ServerConn, type ServeOptions, type WireServer, type HandlerContext, type HandlerResult } from "./server";
export { WireClient, parseAddress, type WireClientOptions, type CallOptions } from "./client";
export { ClientPool } from "./pool";
export {
  WireError,
  errorBody,
  protoError,
  type Body,
  type BodyCase,
  type BodyOf,
  type ErrorExtra,
  type TransportFailure,
} from "./errors";
export { expectCase } from "./expect-case";
export {
  encodeFrame,
  encodeFrameBytes,
  frameBytes,
  LENGTH_PREFIX_BYTES,
  decodeFrame,
  DEFAULT_MAX_FRAME_BYTES,
  type EncodedFrame,
  type DecodedFrame,
} from "./frame";
export { FrameDecoder, FrameStreamError } from "./decoder";
export {
  encodeBatch,
  decodeBatch,
  readBatchHeader,
  verifyBatch,
  stampBatch,
  splitBatches,
  batchSize,
  BATCH_HEADER_BYTES,
  type BatchInput,
  type BatchHeader,
  type RecordInput,
  type DecodedRecord,
} from "./batch";
export { parseTopicConfig, TOPIC_CONFIG_KEYS, type TopicSettings } from "./topic-config";
