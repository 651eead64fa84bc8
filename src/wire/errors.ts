import { create } from "@bufbuild/protobuf";
import {
  ErrorCode,
  ErrorResponseSchema,
  ErrorSchema,
  type Error as ProtoError,
  type Frame,
} from "../proto/goulette_pb";

export type Body = Frame["body"];
export type BodyCase = NonNullable<Body["case"]>;
export type BodyOf<C extends BodyCase> = Extract<Body, { case: C }>["value"];

/** Hints a responder may attach to an error (NOT_LEADER, OFFSET_OUT_OF_RANGE). */
export interface ErrorExtra {
  leaderId?: number;
  leaderAddress?: string;
  earliestOffset?: number;
  latestOffset?: number;
}

/**
 * Where a transport failure happened, so a caller can tell "never sent" (safe to retry anywhere) from
 * "sent, outcome unknown" (retry only if idempotent).
 */
export type TransportFailure = "connect" | "lost" | "timeout" | "overload" | "closed";

/** An error that crosses the wire: a typed code and a message, never a stack trace. */
export class WireError extends Error {
  readonly code: ErrorCode;
  readonly leaderId: number;
  readonly leaderAddress: string;
  readonly earliestOffset: number;
  readonly latestOffset: number;
  /** Set when the failure is local to the transport rather than an answer from the peer. */
  readonly transport: TransportFailure | undefined;

  constructor(code: ErrorCode, message: string, extra: ErrorExtra = {}, transport?: TransportFailure) {
    super(message);
    this.name = "WireError";
    this.code = code;
    this.leaderId = extra.leaderId ?? 0;
    this.leaderAddress = extra.leaderAddress ?? "";
    this.earliestOffset = extra.earliestOffset ?? 0;
    this.latestOffset = extra.latestOffset ?? 0;
    this.transport = transport;
  }

  /** e.g. "NOT_LEADER" */
  get codeName(): string {
    return ErrorCode[this.code] ?? `CODE_${this.code}`;
  }

  static fromProto(err: ProtoError): WireError {
    return new WireError(err.code, err.message, {
      leaderId: err.leaderId,
      leaderAddress: err.leaderAddress,
      earliestOffset: Number(err.earliestOffset),
      latestOffset: Number(err.latestOffset),
    });
  }

  toProto(): ProtoError {
    return protoError(this.code, this.message, this);
  }
}

/** The `Error` message to put in a response's `error` field. */
export function protoError(code: ErrorCode, message: string, extra: ErrorExtra = {}): ProtoError {
  return create(ErrorSchema, {
    code,
    message,
    leaderId: extra.leaderId ?? 0,
    leaderAddress: extra.leaderAddress ?? "",
    earliestOffset: BigInt(extra.earliestOffset ?? 0),
    latestOffset: BigInt(extra.latestOffset ?? 0),
  });
}

/** An `error` frame body (ErrorResponse), for a request that cannot be answered with its own response type. */
export function errorBody(code: ErrorCode, message: string, extra?: ErrorExtra): Body {
  return { case: "error", value: create(ErrorResponseSchema, { error: protoError(code, message, extra) }) };
}

/** Turns anything a handler threw into a body fit for the wire (no stack traces cross it). */
export function errorBodyFromThrown(thrown: unknown): Body {
  if (thrown instanceof WireError) return { case: "error", value: create(ErrorResponseSchema, { error: thrown.toProto() }) };
  return errorBody(ErrorCode.UNKNOWN, "internal error");
}
