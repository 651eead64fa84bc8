import { fromBinary, toBinary, type DescMessage, type Message } from "@bufbuild/protobuf";
import { ErrorCode, FrameSchema } from "../proto/goulette_pb";
import { WireError, type Body, type BodyCase } from "./errors";

/** Bytes of the length prefix in front of every frame. */
export const LENGTH_PREFIX_BYTES = 4;
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;

/**
 * One encoded frame, ready for the socket: `head` holds the length prefix and every protobuf byte except
 * the zero-copy tail; `tail`, when present, is the caller's batch itself (never copied).
 */
export interface EncodedFrame {
  head: Uint8Array;
  tail: Uint8Array | undefined;
  /** Further pieces after the tail, in order (frames encoded by hand, e.g. Raft appends with entry data). */
  more?: Uint8Array[];
  /** head.length + tail.length: what goes on the wire, prefix included. */
  byteLength: number;
}

interface BodyField {
  number: number;
  schema: DescMessage;
  /** The bytes field written last by hand, for bodies that carry a batch. */
  tail: { localName: string; number: number } | undefined;
}

// Bodies whose last field is a record batch. The schema promises these are their message's highest
// field number, so writing them after the rest keeps the protobuf canonical in field order.
const TAIL_FIELDS: Partial<Record<BodyCase, string>> = {
  produce: "batch",
  fetchResponse: "records",
  replicateFragmentResponse: "data",
};

const BODY_FIELDS = new Map<string, BodyField>();
for (const field of FrameSchema.fields) {
  if (field.oneof?.name !== "body") continue;
  if (field.fieldKind !== "message") throw new Error(`Frame.body.${field.localName} is not a message`);
  const tailName = TAIL_FIELDS[field.localName as BodyCase];
  let tail: BodyField["tail"];
  if (tailName !== undefined) {
    const tf = field.message.fields.find((f) => f.localName === tailName);
    const maxNumber = Math.max(...field.message.fields.map((f) => f.number));
    if (tf === undefined || tf.fieldKind !== "scalar" || tf.number !== maxNumber) {
      throw new Error(`${field.message.typeName}.${tailName} must be the last bytes field`);
    }
    tail = { localName: tailName, number: tf.number };
  }
  BODY_FIELDS.set(field.localName, { number: field.number, schema: field.message, tail });
}
for (const name of Object.keys(TAIL_FIELDS)) {
  if (!BODY_FIELDS.has(name)) throw new Error(`Frame has no body case ${name}`);
}

const EMPTY = new Uint8Array(0);
const WIRE_TYPE_VARINT = 0;
const WIRE_TYPE_LEN = 2;

export function varintSize(n: number): number {
  let size = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

/** Writes a non-negative safe integer as a varint (no 32-bit shifts, so values up to 2^53 survive). */
export function writeVarint(buf: Uint8Array, pos: number, n: number): number {
  while (n >= 128) {
    buf[pos++] = (n % 128) | 128;
    n = Math.floor(n / 128);
  }
  buf[pos++] = n;
  return pos;
}

/**
 * Encodes one frame. For bodies with a batch tail, the body is encoded without the batch, then the batch's
 * tag and length are written by hand and the batch itself rides along as `tail`: the bytes on the wire
 * are exactly a valid Frame, but the batch never passes through a protobuf encoder.
 */
export function encodeFrame(correlationId: number, body: Body): EncodedFrame {
  if (!Number.isSafeInteger(correlationId) || correlationId < 0) {
    throw new Error(`correlation id must be a non-negative safe integer, got ${correlationId}`);
  }
  const kase = body.case;
  if (kase === undefined) throw new Error("cannot encode a frame without a body");
  const field = BODY_FIELDS.get(kase);
  if (field === undefined) throw new Error(`unknown body case ${kase}`);
  const value = body.value as unknown as Record<string, unknown> & Message;

  let inner: Uint8Array;
  let tail: Uint8Array | undefined;
  if (field.tail !== undefined) {
    const bytes = value[field.tail.localName];
    if (!(bytes instanceof Uint8Array)) throw new Error(`${kase}.${field.tail.localName} must be a Uint8Array`);
    // Encode the message without its batch. The message is the caller's, so put the batch back even if
    // the encoder throws.
    value[field.tail.localName] = EMPTY;
    try {
      inner = toBinary(field.schema, value);
    } finally {
      value[field.tail.localName] = bytes;
    }
    tail = bytes.length > 0 ? bytes : undefined;
  } else {
    inner = toBinary(field.schema, value);
  }

  const tailTag = field.tail !== undefined ? field.tail.number * 8 + WIRE_TYPE_LEN : 0;
  const tailFieldBytes = tail !== undefined ? varintSize(tailTag) + varintSize(tail.length) + tail.length : 0;
  const bodyLength = inner.length + tailFieldBytes;
  const bodyTag = field.number * 8 + WIRE_TYPE_LEN;
  const corrBytes = correlationId !== 0 ? 1 + varintSize(correlationId) : 0;
  const frameLength = corrBytes + varintSize(bodyTag) + varintSize(bodyLength) + bodyLength;
  const headLength = LENGTH_PREFIX_BYTES + frameLength - (tail?.length ?? 0);

  const head = new Uint8Array(headLength);
  new DataView(head.buffer).setUint32(0, frameLength);
  let pos = LENGTH_PREFIX_BYTES;
  if (correlationId !== 0) {
    head[pos++] = 1 * 8 + WIRE_TYPE_VARINT;
    pos = writeVarint(head, pos, correlationId);
  }
  pos = writeVarint(head, pos, bodyTag);
  pos = writeVarint(head, pos, bodyLength);
  head.set(inner, pos);
  pos += inner.length;
  if (tail !== undefined) {
    pos = writeVarint(head, pos, tailTag);
    pos = writeVarint(head, pos, tail.length);
  }
  if (pos !== headLength) throw new Error(`frame head size mismatch: wrote ${pos}, planned ${headLength}`);
  return { head, tail, byteLength: LENGTH_PREFIX_BYTES + frameLength };
}

/** The frame as one contiguous buffer (copies the tail): for tests and callers that need one buffer. */
export function encodeFrameBytes(correlationId: number, body: Body): Uint8Array {
  return frameBytes(encodeFrame(correlationId, body));
}

/** Any encoded frame as one contiguous buffer. */
export function frameBytes(f: EncodedFrame): Uint8Array {
  if (f.tail === undefined && !f.more?.length) return f.head;
  const out = new Uint8Array(f.byteLength);
  let at = 0;
  for (const piece of [f.head, ...(f.tail ? [f.tail] : []), ...(f.more ?? [])]) {
    out.set(piece, at);
    at += piece.length;
  }
  return out;
}

export interface DecodedFrame {
  correlationId: number;
  body: Body;
}

/**
 * Decodes the protobuf of one frame (without its length prefix). Bytes fields, batches included, come
 * back as views into `bytes`, not copies.
 */
export function decodeFrame(bytes: Uint8Array): DecodedFrame {
  let frame;
  try {
    frame = fromBinary(FrameSchema, bytes, { readUnknownFields: false });
  } catch (e) {
    throw new WireError(ErrorCode.MALFORMED_FRAME, `frame does not decode: ${(e as Error).message}`);
  }
  const correlationId = Number(frame.correlationId);
  if (!Number.isSafeInteger(correlationId)) {
    throw new WireError(ErrorCode.MALFORMED_FRAME, "correlation id above 2^53");
  }
  return { correlationId, body: frame.body };
}

/**
 * Reads the correlation id at the start of a frame's protobuf without decoding the rest, so a frame that
 * cannot be decoded (too large, malformed) can still be answered. Undefined when it is not there.
 */
export function peekCorrelationId(bytes: Uint8Array): number | undefined {
  if (bytes.length < 2 || bytes[0] !== 1 * 8 + WIRE_TYPE_VARINT) return undefined;
  let value = 0;
  let scale = 1;
  for (let i = 1; i < bytes.length && i <= 8; i++) {
    const b = bytes[i]!;
    value += (b & 127) * scale;
    if (b < 128) return Number.isSafeInteger(value) && value > 0 ? value : undefined;
    scale *= 128;
  }
  return undefined;
}
